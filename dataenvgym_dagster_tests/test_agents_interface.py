"""The public agent interface: one import, schemas and renderings, the environment's rules, and agents by name."""

import json
import sys
import textwrap

import pytest

from dataenvgym_dagster import agents
from dataenvgym_dagster.agents import (
    AgentError,
    DataGenerationPlan,
    PlanEntry,
    PlanRefusedError,
    PolicyAction,
    PolicyContext,
    load_policy,
    plan_problems,
    run_policy,
)
from dataenvgym_dagster.cli import main
from dataenvgym_dagster.domain.environments import ENVIRONMENTS, get_environment
from dataenvgym_dagster.experiments import ExperimentSettings
from dataenvgym_dagster_tests.test_environments import ENGINE, observe, plan

BUDGET = 120


def context(budget: int = BUDGET) -> PolicyContext:
    return PolicyContext(budget=budget, seed=0, proposer=ENGINE)


def skill_list_state():
    return observe("skill_list", {"addition/two_digit_carry": 0.3, "subtraction/borrow": 0.6})


def hand_plan(state, entries, actions=(), environment="skill_list") -> DataGenerationPlan:
    return DataGenerationPlan(
        domain=state.domain, experiment=state.experiment, iteration=state.iteration, environment=environment,
        policy="hand", entries=tuple(entries), actions=tuple(actions),
    )


@pytest.fixture
def agent_module(tmp_path, monkeypatch):
    """A module of agents in a folder of its own, importable as ``my_agents`` (as on PYTHONPATH)."""

    def write(source: str, name: str = "my_agents"):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


# -- one import ---------------------------------------------------------------------------------------
def test_the_agents_module_reexports_the_loops_own_types_not_copies():
    from dataenvgym_dagster.domain.environments.base import PolicyContext as LoopContext
    from dataenvgym_dagster.domain.environments.skill_tree import SkillTreeState
    from dataenvgym_dagster.domain.plans import DataGenerationPlan as LoopPlan
    from dataenvgym_dagster.domain.teachers.protocol import GenerationResult

    assert agents.PolicyContext is LoopContext and agents.DataGenerationPlan is LoopPlan
    assert agents.SkillTreeState is SkillTreeState and agents.GenerationResult is GenerationResult
    assert all(hasattr(agents, name) for name in agents.__all__)


# -- schemas and renderings ------------------------------------------------------------------------
@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_a_states_json_matches_its_schema_and_reads_back_as_the_same_state(environment):
    state = observe(environment, {"addition/two_digit_carry": 0.3})
    schema = agents.environment_schema(environment)
    dumped = json.loads(state.model_dump_json())
    assert set(dumped) <= set(schema["state"]["properties"])
    assert set(schema["state"]["required"]) <= set(dumped)
    assert type(state).model_validate(dumped) == state
    assert set(schema["actions"]) == set(get_environment(environment).actions)


def test_the_state_schema_shows_accuracy_and_reward_an_agent_in_another_language_cannot_compute_itself():
    performance = agents.environment_schema("skill_list")["state"]["$defs"]["SkillPerformance"]["properties"]
    assert {"accuracy", "reward"} <= set(performance)
    dumped = json.loads(skill_list_state().model_dump_json())
    assert {s["skill"]: s["accuracy"] for s in dumped["skills"]}["addition/two_digit_carry"] == pytest.approx(0.3)


@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_the_text_rendering_shows_what_the_state_holds(environment):
    state = observe(environment, {"addition/two_digit_carry": 0.3})
    text = state.render()
    assert text.startswith(f"{environment} state of arithmetic|e: planning iteration 1")
    if environment == "skill_list":
        assert "- addition/two_digit_carry: accuracy 30% (3/10)" in text
    if environment == "skill_tree":
        assert "- addition: accuracy" in text and "(no sub-skills yet)" in text
    if environment == "open_ended":
        assert "7 answered wrongly" in text and "addition/two_digit_carry/3" in text


def test_the_schema_command_prints_the_state_and_plan_schemas(capsys):
    assert main(["schema", "skill_tree"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["environment"] == "skill_tree" and "trees" in printed["state"]["properties"]
    assert "entries" in printed["plan"]["properties"] and "explore" in printed["actions"]


# -- the environment's rules ---------------------------------------------------------------------------
@pytest.mark.parametrize("environment,policy", [(e, p) for e, env in ENVIRONMENTS.items() for p, spec in env.policies.items() if not spec.needs_chat])
def test_every_built_in_policys_plan_keeps_the_rules(environment, policy):
    state = observe(environment, {"addition/two_digit_carry": 0.3, "subtraction/borrow": 0.6})
    assert plan_problems(get_environment(environment), state, plan(environment, policy, state, budget=BUDGET), BUDGET) == []


def test_a_plan_over_the_budget_is_refused_whole_not_clipped():
    state = skill_list_state()
    over = hand_plan(state, [PlanEntry(entry_id="a", skill="addition/two_digit_carry", count=BUDGET + 1, rationale="more")])
    loaded = load_policy("skill_list", "weak_skills")
    refusing = type(loaded)(loaded.info, lambda s, c: over, True)
    with pytest.raises(PlanRefusedError, match=f"asks for {BUDGET + 1} examples, over the budget of {BUDGET}") as refused:
        run_policy(refusing, "skill_list", state, context())
    assert refused.value.plan.total == BUDGET + 1  # the agent's own plan, as it asked
    assert "policy 'weak_skills'" in str(refused.value) and "arithmetic|e iteration 1" in str(refused.value)
    row = refused.value.plan.refusal_rows(refused.value.reasons)[0]
    assert row["action"] == "refused" and "over the budget" in json.loads(row["detail"])["reasons"][0]


def test_a_plan_naming_a_skill_outside_the_taxonomy_is_refused():
    state = skill_list_state()
    unknown = hand_plan(state, [PlanEntry(entry_id="a", skill="addition/imaginary", count=10, rationale="?")])
    (reason,) = plan_problems(get_environment("skill_list"), state, unknown, BUDGET)
    assert "names skill 'addition/imaginary', which is not in the taxonomy" in reason


def test_a_skill_tree_plan_must_grow_subskills_under_existing_top_level_skills():
    state = observe("skill_tree", {})
    grown = hand_plan(state, [PlanEntry(entry_id="a", skill="carries", parent_skill="astrology", count=10, rationale="?")], environment="skill_tree")
    (reason,) = plan_problems(get_environment("skill_tree"), state, grown, BUDGET)
    assert "under 'astrology', which is not a top-level skill" in reason


def test_an_action_the_environment_does_not_offer_is_refused():
    state = skill_list_state()
    entries = [PlanEntry(entry_id="a", skill="addition/two_digit_carry", count=10, rationale="x")]
    explore = hand_plan(state, entries, [PolicyAction(skill="addition/two_digit_carry", action="explore", reward=None)])
    (reason,) = plan_problems(get_environment("skill_list"), state, explore, BUDGET)
    assert reason == "action 'explore' is not offered by skill_list (offered: allocate)"


def test_an_open_ended_plan_may_only_imitate_examples_of_the_state():
    state = observe("open_ended", {"addition/two_digit_carry": 0.0})
    chosen = plan("open_ended", "errors", state, budget=BUDGET)
    forged = chosen.entries[0].model_copy(update={"similar_to": (chosen.entries[0].similar_to[0].model_copy(update={"example_id": "nowhere/1"}),)})
    reasons = plan_problems(get_environment("open_ended"), state, chosen.model_copy(update={"entries": (forged, *chosen.entries[1:])}), BUDGET)
    assert reasons == [f"entry {forged.entry_id!r} imitates example 'nowhere/1', which is not in the state"]


# -- agents by name --------------------------------------------------------------------------------------
def test_a_built_in_policy_has_a_version_that_is_its_sources_hash():
    loaded = load_policy("skill_list", "learnable")
    assert loaded.info.origin == "built-in" and len(loaded.info.version) == 12 and loaded.uses_state
    assert not load_policy("skill_list", "no_state").uses_state


def test_a_policy_from_a_plain_module_runs_and_is_stamped_with_its_name_and_source_hash(agent_module):
    agent_module(
        """
        from dataenvgym_dagster.agents import DataGenerationPlan, PlanEntry, PolicyAction

        def weakest(state, context):
            p = min(state.skills, key=lambda p: p.accuracy)
            return DataGenerationPlan(
                domain=state.domain, experiment=state.experiment, iteration=state.iteration, environment="skill_list",
                policy="whatever I like", entries=[PlanEntry(entry_id="w", skill=p.skill, count=context.budget, rationale="weakest")],
                actions=[PolicyAction(skill=p.skill, action="allocate", reward=p.reward, detail={"count": context.budget})],
            )
        weakest.uses_state = True
        """
    )
    loaded = load_policy("skill_list", "my_agents:weakest")
    made = run_policy(loaded, "skill_list", skill_list_state(), context())
    assert (made.policy, made.policy_version) == ("my_agents:weakest", loaded.info.version)
    assert made.entries[0].skill == "addition/two_digit_carry" and loaded.info.origin == "import path"
    assert all(row["policy_version"] == loaded.info.version for row in made.warehouse_rows() + made.action_rows())


def test_editing_an_agents_source_makes_a_new_version(agent_module):
    agent_module("def policy(state, context):\n    return None\n")
    first = load_policy("skill_list", "my_agents:policy").info.version
    agent_module("def policy(state, context):\n    return None  # changed\n")
    assert load_policy("skill_list", "my_agents:policy").info.version != first


@pytest.mark.parametrize(
    "source,name,message",
    [
        ("", "not_a_module_anywhere:policy", "policy 'not_a_module_anywhere:policy' \\(import path\\) does not import: ModuleNotFoundError"),
        ("raise RuntimeError('broken on import')\n", "my_agents:policy", "does not import: RuntimeError: broken on import"),
        ("x = 1\n", "my_agents:policy", "module 'my_agents' (.*) has no attribute 'policy'"),
        ("policy = 42\n", "my_agents:policy", "is a int, not a callable policy\\(state, context\\)"),
        ("class policy:\n    pass\n", "my_agents:policy", "is a class, not a callable"),
        ("def policy(state):\n    pass\n", "my_agents:policy", "cannot be called as policy\\(state, context\\): its signature is policy\\(state\\)"),
        ("def policy(s, c):\n    pass\npolicy.environment = 'skill_tree'\n", "my_agents:policy", "written for environment 'skill_tree', not 'skill_list'"),
    ],
)
def test_an_agent_that_cannot_be_loaded_says_which_and_why(agent_module, source, name, message):
    agent_module(source)
    with pytest.raises(AgentError, match=message):
        load_policy("skill_list", name)


@pytest.mark.parametrize(
    "body,message",
    [
        ("raise ZeroDivisionError('oops')", "policy 'my_agents:policy' raised on arithmetic\\|e iteration 1: ZeroDivisionError: oops"),
        ("return {'entries': []}", "returned a dict on arithmetic\\|e iteration 1; it must return a dataenvgym_dagster.agents.DataGenerationPlan"),
    ],
)
def test_a_policy_that_raises_or_returns_the_wrong_type_is_named_with_the_partition_and_iteration(agent_module, body, message):
    agent_module(f"def policy(state, context):\n    {body}\n")
    with pytest.raises(AgentError, match=message):
        run_policy(load_policy("skill_list", "my_agents:policy"), "skill_list", skill_list_state(), context())


# -- the catalogue ----------------------------------------------------------------------------------------
def test_the_catalogue_accepts_an_import_path_without_importing_it():
    settings = ExperimentSettings(policy="not_yet_written.curriculum:policy")
    assert settings.policy == "not_yet_written.curriculum:policy"


def test_the_catalogue_names_the_choices_for_an_unknown_policy_or_engine():
    with pytest.raises(ValueError, match="policy 'cleverest' does not exist for environment 'skill_list'; choose one of: learnable"):
        ExperimentSettings(policy="cleverest")
    with pytest.raises(ValueError, match="teacher 'gpt' is not an engine; choose one of: offline, llm"):
        ExperimentSettings(teacher="gpt")


def test_a_teacher_block_names_an_outside_engine_and_its_options():
    settings = ExperimentSettings(teacher={"engine": "my_agents.engines:Engine", "options": {"temperature": 0.2}})
    assert settings.teacher == "my_agents.engines:Engine" and settings.teacher_options == {"temperature": 0.2}
    with pytest.raises(ValueError, match="must have `engine:`"):
        ExperimentSettings(teacher={"class": "x:y"})
