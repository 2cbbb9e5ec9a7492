-- pareto_serving: the non-dominated ways to serve a model under continuous batching -- no other configuration
--   gives at least as many output tokens/s per chip and as many tokens/s to each user (and is as good in a
--   third objective, if given: usd_per_million_tokens or energy_per_token_j) and is strictly better in one --
--   among the configurations that meet the latency SLOs, over the latest version of every sweep, or of one
--   sweep. Each model and workload (prompt and output length) is its own frontier; where usd_per_million_tokens is
--   an objective, rental prices and owned costs are two (a chip rented at its hourly price never competes with one
--   priced at what owning it costs), unless cost_basis picks one.
-- @param model model = null  catalog model id, e.g. llama3_70b (default: every model, each its own frontier)
-- @param sweep sweep = null  only this sweep (default: the latest version of every sweep)
-- @param version version(sweep) = null  with sweep: that version of it, an older one too (default: its latest)
-- @param objectives objectives(inference) = output_tokens_per_s_per_chip:max,tokens_per_s_per_user:max  two or three objective columns, e.g. add usd_per_million_tokens or energy_per_token_j; throughput-like ones are maximised, or say col:max / col:min
-- @param ttft_max_s positive = null  SLO: only configurations whose time to first token (at their load) is at most this many seconds
-- @param tpot_max_s positive = null  SLO: only configurations whose time per output token (at their load) is at most this many seconds
-- @param calibration choice(measured|any) = null  measured: only chips whose serving efficiency was fitted on their own published runs with this engine (`calibrated_on` not "extrapolated ..."); default any
-- @param cost_basis choice(rental|owned) = null  compare costs on one basis: the chips' rental prices, or what owning them costs (default: each basis its own frontier where usd_per_million_tokens is an objective)
-- @param engine choice(tensorrt_llm|vllm|sglang|llama_cpp|mlc|exllama|jetstream|qnn|vllm_2023) = null  only this serving engine: chips compared under one software stack (default: every engine; a row left blank runs its chip's default engine, TensorRT-LLM on NVIDIA's datacenter chips, vLLM on AMD's)
-- @plot
WITH feasible AS NOT MATERIALIZED (
    SELECT f.* FROM (SELECT * FROM latest_inference WHERE $version IS NULL
                     UNION ALL
                     SELECT * FROM inference WHERE $version IS NOT NULL AND sweep = $sweep AND version = $version) f
    WHERE f.fits AND coalesce(f.infeasible_reason, '') = ''
      AND ($sweep IS NULL OR f.sweep = $sweep)
      AND ($model IS NULL
           OR (f.sweep, f.version, f.model_id) IN (SELECT sweep, version, model_id FROM models WHERE model = $model))
      -- the SLOs: a configuration without the latency (NaN) never meets one
      AND ($ttft_max_s IS NULL OR coalesce(f.ttft_s <= $ttft_max_s, false))
      AND ($tpot_max_s IS NULL OR coalesce(f.tpot_s <= $tpot_max_s, false))
      AND (coalesce($calibration, 'any') = 'any' OR fitted_on_own_runs(f.calibrated_on))
      AND ($engine IS NULL OR f.engine = $engine)
      AND ($cost_basis IS NULL OR f.cost_basis = $cost_basis)
),
-- first per sweep version (ids are only meaningful there), then across sweeps by name: a row on the
-- model's frontier is on the frontier of its own sweep version, so nothing is lost
near AS (SELECT * FROM pareto(feasible, $objectives, partition_by := (sweep, version, model_id, prompt_len, gen_len, cost_basis))),
named AS (
    SELECT n.*, m.model, c.chip, c.name AS chip_name
    FROM near n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
    LEFT JOIN chips c ON c.sweep = n.sweep AND c.version = n.version AND c.chip_id = n.chip_id
)
SELECT model, chip, chip_name,
       serving_layout(n_chips, pp, ep, ep_dedup, dp_attention, compute_precision, weight_bits, concurrency,
                      ssm_state_bits, disaggregated, prefill_instances, decode_instances) AS layout,
       $objectives.columns,
       -- the latencies, throughput, cost, energy and power that are not objectives already
       COLUMNS(lambda c: c IN ('ttft_s', 'tpot_s', 'output_tokens_per_s', 'usd_per_million_tokens',
                               'energy_per_token_j', 'power_w')
               AND NOT list_contains(list_transform(string_split($objectives, ','),
                                                    lambda o: split_part(o, ':', 1)), c)),
       n_chips, pp, ep, concurrency, compute_precision, weight_bits, kv_bits, ssm_state_bits, disaggregated,
       prefill_instances, decode_instances, dp_attention, ep_dedup, engine, async_scheduling, prompt_len, gen_len, cost_basis, calibrated_on, sweep, version, idx
FROM pareto(named, $objectives, partition_by := (model, prompt_len, gen_len, cost_basis))
-- a configuration in two sweeps (overlapping grids) is one point: kept from the first sweep by name
QUALIFY sweep = min(sweep) OVER (PARTITION BY model, prompt_len, gen_len, cost_basis, chip, layout, engine, kv_bits, async_scheduling, $objectives.columns)
ORDER BY model, prompt_len, gen_len, 5 DESC, idx
