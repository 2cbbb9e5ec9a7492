-- pareto_training: the non-dominated training configurations of a model -- no other configuration
--   is at least as fast, as cheap (and as good in a third objective, if given) and strictly better in
--   one -- over the latest version of every sweep, or of one sweep. Each workload (training tokens and
--   sequence length) is its own frontier: a sweep of 1T tokens is not a faster way to train 15T.
-- @param model model = null  catalog model id, e.g. llama2_70b (default: every model, each its own frontier)
-- @param sweep sweep = null  only this sweep (default: the latest version of every sweep)
-- @param version version(sweep) = null  with sweep: that version of it, an older one too (default: its latest)
-- @param cost_basis choice(rental|owned) = null  compare costs on one basis: rental prices, or the owned cluster's TCO (default: each basis its own frontier)
-- @param chips chips = null  only these chips: catalog ids separated by commas (default: every chip)
-- @param precision choice(fp32|fp16|bf16|fp8|mxfp8|nvfp4|int8) = null  only this training precision, e.g. bf16 (default: every precision)
-- @param calibration choice(measured|any) = null  measured: only chips whose efficiency was fitted on their own published runs (`calibrated_on` not "extrapolated ..."); default any
-- @param max_days positive = null  a deadline: only configurations that train in at most this many days (the frontier within it)
-- @param max_cost_usd positive = null  a budget: only configurations that cost at most this many dollars
-- @param objectives objectives(training) = time_to_train_days,cost_usd  two or three objective columns; throughput-like ones (tokens_per_s, mfu) are maximised, or say col:max / col:min
-- @plot
WITH feasible AS NOT MATERIALIZED (
    SELECT f.* FROM (SELECT * FROM latest_training WHERE $version IS NULL
                     UNION ALL
                     SELECT * FROM training WHERE $version IS NOT NULL AND sweep = $sweep AND version = $version) f
    WHERE f.fits AND coalesce(f.infeasible_reason, '') = ''
      AND ($sweep IS NULL OR f.sweep = $sweep)
      AND ($cost_basis IS NULL OR f.cost_basis = $cost_basis)
      AND ($precision IS NULL OR f.precision = $precision)
      AND ($max_days IS NULL OR f.time_to_train_days <= $max_days)
      AND ($max_cost_usd IS NULL OR f.cost_usd <= $max_cost_usd)
      AND (coalesce($calibration, 'any') = 'any' OR fitted_on_own_runs(f.calibrated_on))
      AND ($chips IS NULL
           OR (f.sweep, f.version, f.chip_id) IN (SELECT sweep, version, chip_id FROM chips
                                                   WHERE list_contains(string_split($chips, ','), chip)))
      AND ($model IS NULL
           OR (f.sweep, f.version, f.model_id) IN (SELECT sweep, version, model_id FROM models WHERE model = $model))
),
-- first per sweep version (ids are only meaningful there), then across sweeps by name: a row on the
-- model's frontier is on the frontier of its own sweep version, so nothing is lost
-- rental prices and owned TCO never share a frontier: each basis is its own (one unless cost_basis picks)
near AS (SELECT * FROM pareto(feasible, $objectives, partition_by := (sweep, version, model_id, cost_basis, tokens, seq_len))),
named AS (
    SELECT n.*, m.model, c.chip, c.name AS chip_name
    FROM near n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
    LEFT JOIN chips c ON c.sweep = n.sweep AND c.version = n.version AND c.chip_id = n.chip_id
)
-- only the columns shown are read from the lake (a wide frontier of 100M rows reads every column once):
-- the objectives, the layout, and the key to look anything else up (sweep, version, idx)
SELECT model, chip, chip_name,
       training_layout(n_chips, tp, pp, dp, micro_batch, interleave, recompute, zero_stage,
                       offload_layers := offload_layers, ep := ep, cp := cp) AS layout,
       $objectives.columns,
       cost_basis, capex_usd, n_chips, tp, pp, dp, ep, cp, expert_tp, micro_batch, interleave, recompute, zero_stage,
       offload_layers, precision, framework, global_batch, tokens, seq_len,
       calibrated_on, sweep, version, idx
-- each frontier one block of rows: rental, then owned
FROM pareto(named, $objectives, partition_by := (model, tokens, seq_len, cost_basis))
-- a configuration in two sweeps (overlapping grids) is one point: kept from the first sweep by name
QUALIFY sweep = min(sweep) OVER (PARTITION BY model, tokens, seq_len, cost_basis, chip, layout, precision, global_batch,
                                   $objectives.columns)
ORDER BY model, tokens, seq_len, cost_basis DESC, 5, 6, idx
