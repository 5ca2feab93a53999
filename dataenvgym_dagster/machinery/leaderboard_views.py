"""The leaderboard's SQL: one row per finished run, then one row per agent with intervals over seeds.

``leaderboard_runs`` has one row per domain × experiment partition that reached an iteration
after 0, with what makes runs comparable: the content hash of the test split it was scored on,
the base student's checkpoint hash (plus the experiment's student overrides), the budget and the
last iteration reached. ``leaderboard`` groups those runs into one row per (domain, environment,
agent, agent version, engine, student) at one budget, split and number of iterations:

* ``gain``: mean over seeds of (final − iteration 0) test accuracy, a fraction; its 95 % interval
  is Student's t over the seeds' gains (``mean ± t(0.975, n−1) · sd / √n``), so it says how much
  the gain moves from seed to seed on this test split. One seed: no interval (NULL), never a
  fake one.
* ``vs_blind``: the mean, over seeds both ran, of (this row's gain − the best blind baseline's
  gain) with the same seed, where the best blind baseline is the blind policy (``uses_state``
  false) with the highest mean gain in the same domain, environment, engine, budget, split,
  student, iterations and seeds. Its interval is t over the paired differences.
* ``comparable_key``: split hash, student, budget, iterations, the seed list and, for an imperfect
  offline engine, its drift (``engine_drift``, from the engine's version: ``+drift-<hash>``); only
  rows with the same key (in a domain) are ranked together (``rank`` by gain, 1 best).

Accuracies and gains are fractions; teacher tokens, cost, examples kept and training seconds are
means per run (seed).
"""

from __future__ import annotations

# Two-sided 95 % quantiles of Student's t for 1…30 degrees of freedom; beyond 30, 30's (slightly wide).
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)
T_TABLE = "(VALUES " + ", ".join(f"({df}, {t})" for df, t in enumerate(T_975, start=1)) + ") AS t_975(df, t)"


def t_quantile(degrees_of_freedom: int) -> float:
    """The two-sided 95 % quantile of Student's t the views use (30 degrees of freedom's beyond 30)."""
    if degrees_of_freedom < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom (2 seeds), got {degrees_of_freedom}")
    return T_975[min(degrees_of_freedom, len(T_975)) - 1]


# Who the agent of a run is: the policy as the catalogue names it, and the version experiment_config
# recorded (a built-in's module source hash, an installed package's version, or an outside module's
# source hash). Runs recorded before agents had versions show 'builtin'. The engine is the teacher
# with its version, and the model its calls used (LLM teachers).
AGENT_COLUMNS = "r.policy AS agent, coalesce(r.policy_version, 'builtin') AS agent_version"
ENGINE_COLUMN = "r.teacher || coalesce('@' || r.teacher_version, '') || coalesce(' ' || t.teacher_model, '') AS engine"

LEADERBOARD_RUNS = f"""
    WITH test AS (
        SELECT domain, experiment, iteration, avg(correct::INTEGER) AS accuracy, count(*) AS test_examples,
               md5(string_agg(example_id || chr(31) || coalesce(question, '') || chr(31) || coalesce(reference, ''),
                              chr(30) ORDER BY example_id)) AS split_hash,
               min(checkpoint_sha256) AS checkpoint_sha256
        FROM evaluation_results WHERE split = 'test' GROUP BY ALL),
    final AS (
        SELECT * FROM test QUALIFY iteration = max(iteration) OVER (PARTITION BY domain, experiment)),
    teacher AS (
        SELECT domain, experiment, sum(input_tokens + output_tokens) AS teacher_tokens, sum(cost_usd) AS cost_usd,
               string_agg(DISTINCT model, ',' ORDER BY model) AS teacher_model
        FROM teacher_calls GROUP BY ALL),
    kept AS (
        SELECT domain, experiment, count(*) FILTER (WHERE passed_quality_checks) AS examples_kept
        FROM generated_examples GROUP BY ALL),
    training AS (
        SELECT domain, experiment, sum(seconds) AS training_seconds FROM training_runs GROUP BY ALL),
    runs AS (  -- a home written before agents had versions has no version columns: they read as NULL
        SELECT * FROM experiment_runs
        UNION ALL BY NAME SELECT NULL::VARCHAR AS policy_version, NULL::VARCHAR AS teacher_version WHERE false)
    SELECT r.domain, r.experiment, r.name AS experiment_name, r.environment, {AGENT_COLUMNS}, r.uses_state,
           {ENGINE_COLUMN},
           left(b.checkpoint_sha256, 12)
               || CASE WHEN coalesce(r.settings->>'$.student', '{{}}') <> '{{}}' THEN ' ' || (r.settings->>'$.student') ELSE '' END
               AS student,
           r.seed, r.data_budget, f.iteration AS iterations, b.split_hash, b.test_examples,
           b.accuracy AS base_accuracy, f.accuracy AS final_accuracy, f.accuracy - b.accuracy AS gain,
           coalesce(t.teacher_tokens, 0) AS teacher_tokens, coalesce(t.cost_usd, 0) AS cost_usd,
           coalesce(k.examples_kept, 0) AS examples_kept, coalesce(tr.training_seconds, 0) AS training_seconds
    FROM runs r
    JOIN test b ON b.domain = r.domain AND b.experiment = r.experiment AND b.iteration = 0
    JOIN final f ON f.domain = r.domain AND f.experiment = r.experiment AND f.iteration > 0
    LEFT JOIN teacher t ON t.domain = r.domain AND t.experiment = r.experiment
    LEFT JOIN kept k ON k.domain = r.domain AND k.experiment = r.experiment
    LEFT JOIN training tr ON tr.domain = r.domain AND tr.experiment = r.experiment
"""

# The row of an agent: what a leaderboard row is grouped by (the row key plus what must match).
ROW_KEY = "domain, environment, agent, agent_version, engine, student, data_budget, iterations, split_hash"


def leaderboard_sql(runs: str = "leaderboard_runs") -> str:
    """The leaderboard over ``runs`` (a view name or a parenthesised query with ``leaderboard_runs``' columns)."""
    return f"""
    WITH runs AS (SELECT * FROM {runs}),
    grouped AS (
        SELECT {ROW_KEY}, bool_or(uses_state) AS uses_state,
               count(*) AS seeds, string_agg(seed::VARCHAR, ',' ORDER BY seed) AS seed_list,
               avg(base_accuracy) AS base_accuracy, avg(final_accuracy) AS final_accuracy,
               avg(gain) AS gain, stddev_samp(gain) AS gain_sd,
               avg(teacher_tokens) AS teacher_tokens, avg(cost_usd) AS cost_usd,
               avg(examples_kept) AS examples_kept, avg(training_seconds) AS training_seconds
        FROM runs GROUP BY ALL),
    drifted AS (  -- an imperfect engine is part of the environment: its runs are ranked apart from the unchanged engine's
        SELECT *, nullif(regexp_extract(engine, '[+](drift-[0-9a-f]+)', 1), '') AS engine_drift FROM grouped),
    keyed AS (
        SELECT *, concat_ws(' | ', 'split ' || left(split_hash, 8), 'student ' || student, 'budget ' || data_budget,
                            'iterations ' || iterations, 'seeds ' || seed_list, 'engine ' || engine_drift) AS comparable_key
        FROM drifted),
    best_blind AS (  -- per domain, environment, engine and comparable key: the blind agent with the highest gain
        SELECT domain, environment, engine, comparable_key, agent AS blind_agent, agent_version AS blind_version
        FROM keyed WHERE NOT uses_state
        QUALIFY row_number() OVER (PARTITION BY domain, environment, engine, comparable_key ORDER BY gain DESC, agent) = 1),
    paired AS (
        SELECT k.domain, k.environment, k.agent, k.agent_version, k.engine, k.student, k.data_budget, k.iterations,
               k.split_hash, count(*) AS pairs, avg(a.gain - z.gain) AS vs_blind, stddev_samp(a.gain - z.gain) AS vs_blind_sd
        FROM keyed k
        JOIN best_blind bb USING (domain, environment, engine, comparable_key)
        JOIN runs a ON a.domain = k.domain AND a.environment = k.environment AND a.agent = k.agent
             AND a.agent_version = k.agent_version AND a.engine = k.engine AND a.student = k.student
             AND a.data_budget = k.data_budget AND a.iterations = k.iterations AND a.split_hash = k.split_hash
        JOIN runs z ON z.domain = k.domain AND z.environment = k.environment AND z.agent = bb.blind_agent
             AND z.agent_version = bb.blind_version AND z.engine = k.engine AND z.student = k.student
             AND z.data_budget = k.data_budget AND z.iterations = k.iterations AND z.split_hash = k.split_hash
             AND z.seed = a.seed
        WHERE NOT (k.agent = bb.blind_agent AND k.agent_version = bb.blind_version)
        GROUP BY ALL)
    SELECT k.domain, k.environment, k.agent, k.agent_version, k.uses_state, k.engine, k.student,
           k.seeds, k.seed_list, k.data_budget, k.iterations, k.split_hash,
           k.base_accuracy, k.final_accuracy, k.gain,
           k.gain - g.t * k.gain_sd / sqrt(k.seeds) AS gain_ci_low, k.gain + g.t * k.gain_sd / sqrt(k.seeds) AS gain_ci_high,
           bb.blind_agent AS best_blind, p.pairs AS vs_blind_seeds, p.vs_blind,
           p.vs_blind - v.t * p.vs_blind_sd / sqrt(p.pairs) AS vs_blind_ci_low,
           p.vs_blind + v.t * p.vs_blind_sd / sqrt(p.pairs) AS vs_blind_ci_high,
           k.teacher_tokens, k.cost_usd,
           CASE WHEN k.gain > 0 THEN k.cost_usd / (100 * k.gain) END AS cost_usd_per_point,
           CASE WHEN k.gain > 0 THEN k.teacher_tokens / (100 * k.gain) END AS teacher_tokens_per_point,
           k.examples_kept, k.training_seconds, k.engine_drift, k.comparable_key,
           rank() OVER (PARTITION BY k.domain, k.comparable_key ORDER BY k.gain DESC) AS rank
    FROM keyed k
    LEFT JOIN best_blind bb USING (domain, environment, engine, comparable_key)
    LEFT JOIN paired p USING (domain, environment, agent, agent_version, engine, student, data_budget, iterations, split_hash)
    LEFT JOIN {T_TABLE.replace('t_975(df, t)', 'g(df, t)')} ON g.df = least(k.seeds - 1, {len(T_975)})
    LEFT JOIN {T_TABLE.replace('t_975(df, t)', 'v(df, t)')} ON v.df = least(p.pairs - 1, {len(T_975)})
    ORDER BY k.domain, k.comparable_key, rank, k.environment, k.agent"""


LEADERBOARD_VIEWS = {
    "leaderboard_runs": LEADERBOARD_RUNS,
    "leaderboard": leaderboard_sql(),
}
