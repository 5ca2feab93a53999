"""Procedural tool-use problems: chains of 1-3 tools whose types fit, templated requests, gold plans.

A skill is named after the plan's tool categories and its first tool (or first tool pair), e.g.
``image+ml/object_detection>count``; :func:`sample_plan` writes a problem for any such name whose
tools chain, so the offline teacher can also practise skills labelled on MnMs. The literal inputs
(image files, numbers, cities, names ...) are drawn at random, so each skill has a large problem
space; the plan does not depend on them.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from dataclasses import dataclass

from dataenvgym_dagster.domain.tool_use.catalogue import CATEGORIES, Tool, ToolCatalogue
from dataenvgym_dagster.domain.tool_use.plans import Plan, PlanStep


@dataclass(frozen=True)
class Phrasing:
    """How a request asks for a tool: as the first step (every argument is a literal placeholder)
    or after earlier steps (placeholders only for the literals; the other arguments take earlier outputs)."""

    first: tuple[str, ...]
    follow: tuple[str, ...] = ()


PHRASINGS: dict[str, Phrasing] = {
    "text generation": Phrasing(
        ("continue the text '{text}'", "write what comes after '{text}'"),
        ("continue that text", "write a story from it")),
    "text summarization": Phrasing(
        ("summarize the text '{text}'", "give a short summary of '{text}'"),
        ("summarize it", "shorten that into a summary")),
    "text classification": Phrasing(
        ("classify the sentiment of '{text}'", "tell whether '{text}' is positive or negative"),
        ("classify its sentiment", "tell whether that is positive or negative")),
    "question answering": Phrasing(
        ("answer '{question}' using the text '{text}'", "read '{text}' and answer '{question}'"),
        ("answer '{question}' from that text", "use it to answer '{question}'")),
    "image generation": Phrasing(
        ("draw a picture of {text}", "generate an image of {text}"),
        ("draw a picture of it", "generate an image from that")),
    "image captioning": Phrasing(
        ("describe the image {image}", "write a caption for {image}"),
        ("describe that image", "caption the picture")),
    "optical character recognition": Phrasing(
        ("read the text in {image}", "what does the sign in {image} say"),
        ("read the text in it", "extract the words from that image")),
    "image classification": Phrasing(
        ("classify the image {image}", "what kind of thing is in {image}"),
        ("classify that image", "tell what kind of thing it shows")),
    "image editing": Phrasing(
        ("edit {image} to {prompt}", "change {image} so as to {prompt}"),
        ("edit it to {prompt}", "change that image to {prompt}")),
    "object detection": Phrasing(
        ("detect the objects in {image}", "find every object in {image}"),
        ("detect the objects in it", "find the objects in that image")),
    "image segmentation": Phrasing(
        ("segment the image {image}", "split {image} into object masks"),
        ("segment it", "split that image into masks")),
    "automatic speech recognition": Phrasing(
        ("transcribe the audio {audio}", "write down what is said in {audio}")),
    "visual question answering": Phrasing(
        ("look at {image} and answer '{question}'", "answer '{question}' about {image}"),
        ("answer '{question}' about that image", "ask '{question}' about it")),
    "image crop": Phrasing((), ("crop the image to it", "cut out that object")),
    "image crop left": Phrasing(
        ("keep the left half of {image}", "crop the left side of {image}"),
        ("keep its left half", "crop the left side")),
    "image crop right": Phrasing(
        ("keep the right half of {image}", "crop the right side of {image}"),
        ("keep its right half", "crop the right side")),
    "image crop top": Phrasing(
        ("keep the top half of {image}", "crop the top of {image}"),
        ("keep its top half", "crop the top part")),
    "image crop bottom": Phrasing(
        ("keep the bottom half of {image}", "crop the bottom of {image}"),
        ("keep its bottom half", "crop the bottom part")),
    "background blur": Phrasing((), ("blur the background behind it", "blur everything else")),
    "color pop": Phrasing((), ("make it pop in colour", "keep only it in colour")),
    "count": Phrasing((), ("count them", "tell how many there are")),
    "tag": Phrasing((), ("tag them on the image", "label them on the picture")),
    "select object": Phrasing((), ("pick the {object_name}", "select the {object_name}")),
    "emoji": Phrasing((), ("cover it with a {emoji} emoji", "hide it behind a {emoji} emoji")),
    "get date fact": Phrasing(("tell me a fact about {date}", "what happened on {date}")),
    "get year fact": Phrasing(("tell me a fact about the year {year}", "what is special about {year}")),
    "get math fact": Phrasing(
        ("give a math fact about {number}", "what is mathematically special about {number}"),
        ("give a math fact about that number", "find a math fact about the result")),
    "get trivia fact": Phrasing(
        ("give a trivia fact about {number}", "tell me trivia about the number {number}"),
        ("give a trivia fact about that number", "find trivia about the result")),
    "love calculator": Phrasing(
        ("how compatible are {first_name} and {second_name}", "compute the love score of {first_name} and {second_name}")),
    "get location": Phrasing(("find the coordinates of {city}", "where on the map is {city}")),
    "search movie": Phrasing(
        ("look up the movie {movie_title} from {movie_year}", "find details of the {movie_year} film {movie_title}")),
    "get weather": Phrasing((), ("get the weather there", "check the forecast at that place")),
    "wikipedia simple search": Phrasing(
        ("search Wikipedia for {text}", "look up {text} on Wikipedia"),
        ("look it up on Wikipedia", "search Wikipedia for that")),
}

_TOPICS = (
    "a dog running on the beach", "the history of tea", "a rainy day in the city", "a robot learning to paint",
    "the first moon landing", "a quiet mountain lake", "an old lighthouse", "a busy market at dawn",
    "a cat asleep on a sofa", "a red bicycle", "the causes of the tides", "a storm at sea", "a garden in spring",
    "a train crossing a bridge", "a chess tournament", "the life of bees", "a snowy forest", "a jazz concert",
)
_QUESTIONS = (
    "who is in the picture", "what colour is the car", "how many people are there", "what is the main topic",
    "where was it taken", "what is the person holding", "what time of day is it", "what animal is shown",
)
_PROMPTS = ("add a rainbow", "make it snowy", "turn the sky orange", "remove the people", "add a hat", "make it night")
_OBJECTS = ("dog", "cat", "car", "person", "bicycle", "cup", "chair", "bird", "tree", "laptop")
_EMOJIS = ("smiling_face", "ghost", "alien", "sleepy_face", "crying_face", "goblin")
_CITIES = ("Paris", "Tokyo", "Seattle", "Nairobi", "Lima", "Oslo", "Cairo", "Sydney", "Berlin", "Toronto", "Mumbai", "Rome")
_NAMES = ("Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Gita", "Hugo", "Ines", "Jonas", "Kemal", "Lena")
_MOVIES = ("The Matrix", "Up", "Inception", "Alien", "Heat", "Jaws", "Frozen", "Arrival", "Amelie", "Gravity")
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _literal(argument: str, rng: random.Random) -> str | int:
    """A random literal input of an argument, as it appears in both the request and the plan."""
    match argument:
        case "image":
            return f"{rng.randint(10_000, 2_400_000)}.{rng.choice(('jpg', 'png'))}"
        case "audio":
            return f"{rng.randint(100, 9999)}-{rng.randint(1000, 199_999)}-{rng.randint(0, 99):04d}.flac"
        case "text":
            return rng.choice(_TOPICS)
        case "question":
            return rng.choice(_QUESTIONS)
        case "prompt":
            return rng.choice(_PROMPTS)
        case "object_name":
            return rng.choice(_OBJECTS)
        case "emoji":
            return rng.choice(_EMOJIS)
        case "city":
            return rng.choice(_CITIES)
        case "first_name" | "second_name":
            return rng.choice(_NAMES)
        case "movie_title":
            return rng.choice(_MOVIES)
        case "movie_year":
            return str(rng.randint(1960, 2023))
        case "date":
            month = rng.randint(1, 12)
            return f"{month}/{rng.randint(1, _MONTH_DAYS[month - 1])}"
        case "year":
            return rng.randint(1500, 2023)
        case "number":
            return rng.randint(0, 9999)
    raise ValueError(f"no literal input for argument {argument!r}")


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _binding(argument: str, kind: str, plan: Sequence[PlanStep], catalogue: ToolCatalogue) -> str | None:
    """A reference to the latest earlier output of the argument's name and type (MnMs keys outputs
    ``text``, ``image``, ``objects``, ``number`` ...), or None."""
    for index in range(len(plan) - 1, -1, -1):
        if catalogue[plan[index].name].outputs.get(argument) == kind:
            return f"<node-{index}>.{argument}"
    return None


def can_follow(tool: Tool, plan: Sequence[PlanStep], catalogue: ToolCatalogue) -> bool:
    """Whether ``tool`` can be the next step: it has a follow-up phrasing and every argument the
    phrasing does not spell out binds to an earlier output."""
    phrasing = PHRASINGS[tool.name]
    if not plan or not phrasing.follow:
        return False
    spelled = _placeholders(phrasing.follow[0])
    return all(arg in spelled or _binding(arg, kind, plan, catalogue) for arg, kind in tool.inputs.items())


def _step(tool: Tool, plan: Sequence[PlanStep], rng: random.Random, catalogue: ToolCatalogue) -> tuple[PlanStep, str]:
    """The next step and the request clause asking for it."""
    phrasing = PHRASINGS[tool.name]
    template = rng.choice(phrasing.follow if plan else phrasing.first)
    spelled = _placeholders(template)
    args: dict[str, str | int] = {}
    for arg, kind in tool.inputs.items():
        args[arg] = _literal(arg, rng) if arg in spelled else _binding(arg, kind, plan, catalogue)  # type: ignore[assignment]
    clause = template.format(**{arg: args[arg] for arg in spelled})
    return PlanStep(name=tool.name, args=args), clause


_JOINS = (", then ", " and then ", ". Then ", ", and after that ")


def compose(tools: Sequence[Tool], rng: random.Random, catalogue: ToolCatalogue) -> tuple[str, Plan]:
    """A templated request and its gold plan for a chain of tools (which must chain: see :func:`can_follow`)."""
    plan: list[PlanStep] = []
    request = ""
    for tool in tools:
        if plan and not can_follow(tool, plan, catalogue):
            raise ValueError(f"{tool.name} cannot follow {' > '.join(s.name for s in plan)}: no phrasing or no input of its types")
        if not plan and not PHRASINGS[tool.name].first:
            raise ValueError(f"{tool.name} cannot start a plan: its inputs ({list(tool.inputs)}) come only from other tools")
        step, clause = _step(tool, plan, rng, catalogue)
        request = clause if not plan else request + rng.choice(_JOINS) + clause
        plan.append(step)
    return request[0].upper() + request[1:] + ".", tuple(plan)


def skill_of(plan: Sequence[PlanStep], catalogue: ToolCatalogue) -> str:
    """The gold skill of a plan: ``<categories>/<first tool>[><second tool>]``, with the categories of all
    its tools in alphabetical order joined by ``+`` (``image+ml/object_detection>count``)."""
    tools = [catalogue[step.name] for step in plan]
    categories = "+".join(sorted({tool.category for tool in tools}))
    return f"{categories}/{'>'.join(tool.slug for tool in tools[:2])}"


def parse_skill(skill: str, catalogue: ToolCatalogue) -> tuple[set[str], list[Tool]]:
    """The categories and leading tools a skill name stands for; ``ValueError`` naming what is unknown."""
    categories, _, chain = skill.partition("/")
    wanted = set(categories.split("+"))
    if not chain or not wanted <= set(CATEGORIES):
        raise ValueError(f"tool-use skill {skill!r} is not '<categories>/<tool>[><tool>]' with categories from {CATEGORIES}")
    tools = []
    for slug in chain.split(">"):
        tool = catalogue.get(slug)
        if tool is None:
            raise ValueError(f"tool-use skill {skill!r} names {slug!r}, which is not a tool; known: {', '.join(t.slug for t in catalogue)}")
        tools.append(tool)
    if len(tools) > 2:
        raise ValueError(f"tool-use skill {skill!r} names more than a tool pair")
    return wanted, tools


def sample_plan(skill: str, rng: random.Random, catalogue: ToolCatalogue) -> tuple[str, Plan]:
    """A request and gold plan of ``skill``.

    A one-tool skill is that tool alone. A pair skill is the pair, followed by a third tool
    when the skill's categories need one, and otherwise by a random third tool that fits half
    of the time (of the skill's categories), which makes pair skills harder than single tools.
    """
    categories, tools = parse_skill(skill, catalogue)
    missing = categories - {tool.category for tool in tools}
    if len(tools) == 1:
        if missing:
            raise ValueError(f"skill {skill!r} has categories {sorted(missing)} that its one tool lacks; name a tool pair")
        return compose(tools, rng, catalogue)
    probe = list(compose(tools, random.Random(0), catalogue)[1])
    candidates = [
        tool for tool in catalogue
        if tool not in tools and can_follow(tool, probe, catalogue)
        and categories == {t.category for t in [*tools, tool]}
    ]
    if missing and not candidates:
        raise ValueError(f"no tool of category {sorted(missing)} can follow {' > '.join(t.name for t in tools)} (skill {skill!r})")
    if candidates and (missing or rng.random() < 0.5):
        return compose([*tools, rng.choice(candidates)], rng, catalogue)
    return compose(tools, rng, catalogue)
