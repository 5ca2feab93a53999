"""The learning-curve SVG: a well-formed document with one named line per skill and the mean."""

from __future__ import annotations

from xml.etree import ElementTree

import polars as pl

from dataenvgym_dagster.machinery.plots import learning_curves_svg, skill_style

SVG = "{http://www.w3.org/2000/svg}"


def curves(skills: list[str], iterations: int) -> pl.DataFrame:
    return pl.DataFrame({
        "iteration": [t for t in range(iterations) for _ in skills],
        "skill": [s for _ in range(iterations) for s in skills],
        "accuracy": [((t * 7 + k * 3) % 10) / 9 for t in range(iterations) for k in range(len(skills))],
    })


def lines(svg: str) -> dict[str, ElementTree.Element]:
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return {group.findtext(f"{SVG}title"): group for group in root.iter(f"{SVG}g")}


def test_each_skill_and_the_mean_is_a_named_line_through_every_iteration_in_alphabetical_order():
    skills = ["subtraction/borrow", "addition/one_digit", "modulo/by_one_digit"]
    svg = learning_curves_svg(curves(skills, 4), width=820, height=430, title="arithmetic | e", legend=True)
    drawn = lines(svg)
    assert list(drawn) == [*sorted(skills), "mean over skills"]
    for name, group in drawn.items():
        assert len(group.find(f"{SVG}polyline").get("points").split()) == 4
        assert len(group.findall(f"{SVG}circle")) == 4  # a dot on each point while there are few iterations
    assert drawn["mean over skills"].find(f"{SVG}polyline").get("class") == "mean"
    texts = [text.text for text in ElementTree.fromstring(svg).iter(f"{SVG}text")]
    assert "arithmetic | e" in texts and "iteration" in texts and "test accuracy (%)" in texts
    assert [*sorted(skills), "mean over skills"] == [t for t in texts if t in (*skills, "mean over skills")]  # the legend


def test_skill_names_are_escaped_and_long_ones_shortened_in_the_legend_with_the_full_name_kept():
    long = "category/" + "very_long_skill_name_" * 4
    svg = learning_curves_svg(curves(["<b>&\"'", long], 2), title="a <title> & more", legend=True)
    assert list(lines(svg)) == ["<b>&\"'", long, "mean over skills"]
    legend = {text.findtext(f"{SVG}title"): text.text for text in ElementTree.fromstring(svg).iter(f"{SVG}text") if text.find(f"{SVG}title") is not None}
    assert legend[long] == long[:29] + "…" and legend["<b>&\"'"] == "<b>&\"'"


def test_more_skills_than_colours_get_dashed_then_dotted_lines_and_the_legend_grows_to_hold_them():
    skills = [f"s{k:02d}" for k in range(25)]
    svg = learning_curves_svg(curves(skills, 3), width=820, height=200, legend=True)
    drawn = lines(svg)
    styles = [(g.find(f"{SVG}polyline").get("stroke"), g.find(f"{SVG}polyline").get("stroke-dasharray")) for g in drawn.values()]
    assert len(set(styles)) == 26  # every line told apart
    assert skill_style(0)[1] == "" and skill_style(10)[1] and skill_style(20)[1] and skill_style(10) != skill_style(20)
    assert int(ElementTree.fromstring(svg).get("height")) >= 16 * 26


def test_one_iteration_shows_its_points_and_many_iterations_a_line_with_at_most_thirteen_labels():
    one = lines(learning_curves_svg(curves(["a", "b"], 1)))
    assert all(len(group.findall(f"{SVG}circle")) == 1 for group in one.values())
    svg = learning_curves_svg(curves(["a", "b"], 40), width=820, height=430, title="t", legend=True)
    assert not any(group.findall(f"{SVG}circle") for group in lines(svg).values())
    ticks = [t.text for t in ElementTree.fromstring(svg).iter(f"{SVG}text") if t.get("font-size") == "10" and t.get("text-anchor") == "middle"]
    assert ticks[0] == "0" and ticks[-1] == "39" and len(ticks) <= 13


def test_control_characters_and_missing_accuracies_still_give_a_well_formed_plot():
    frame = pl.DataFrame({"iteration": [0, 1, 0, 1], "skill": ["tab\x01skill", "tab\x01skill", "b", "b"],
                          "accuracy": [0.5, None, float("nan"), 0.25]})
    drawn = lines(learning_curves_svg(frame, title="a\x07title", legend=True))
    assert list(drawn) == ["b", "tab\ufffdskill", "mean over skills"]
    assert [len(g.find(f"{SVG}polyline").get("points").split()) for g in drawn.values()] == [1, 1, 2]
