-- chip_leaderboard: per model, how each chip does at its best -- the shortest time to train, the lowest
--   cost and the lowest energy over all its feasible configurations, each with the layout that reaches
--   it -- over the latest version of every sweep, or of one sweep. Each workload (training tokens and
--   sequence length) has its own rows, and so does each cost basis a chip is costed on (rental prices, or the
--   owned cluster's TCO, as a sweep's cost_basis axis can give both): its cheapest rental row is never set against
--   its cheapest owned one.
-- @param model model = null  only this model (default: every model in the lake)
-- @param sweep sweep = null  only this sweep (default: the latest version of every sweep)
-- @param cost_basis choice(rental|owned) = null  only rows costed on this basis (default: each basis its own rows)
WITH ok AS NOT MATERIALIZED (
    SELECT f.* FROM latest_training f
    WHERE f.fits AND coalesce(f.infeasible_reason, '') = ''
      AND isfinite(f.time_to_train_days)
      AND ($sweep IS NULL OR f.sweep = $sweep)
      AND ($cost_basis IS NULL OR f.cost_basis = $cost_basis)
      AND ($model IS NULL
           OR (f.sweep, f.version, f.model_id) IN (SELECT sweep, version, model_id FROM models WHERE model = $model))
),
per_version AS (
    SELECT sweep, version, model_id, chip_id, tokens, seq_len, cost_basis, count(*) AS configurations,
           arg_min(struct_pack(v := time_to_train_days, idx, n_chips, tp, pp, dp, micro_batch, interleave, recompute,
                               zero_stage, offload_layers, ep, cp), (time_to_train_days, cost_usd, idx)) AS t,
           -- a chip without a price (or power) still gets its time: its cost (energy) cells stay blank
           arg_min(struct_pack(v := cost_usd, idx, n_chips, tp, pp, dp, micro_batch, interleave, recompute,
                               zero_stage, offload_layers, ep, cp), (cost_usd, time_to_train_days, idx))
               FILTER (WHERE isfinite(cost_usd)) AS c,
           arg_min(struct_pack(v := energy_mwh, idx, n_chips, tp, pp, dp, micro_batch, interleave, recompute,
                               zero_stage, offload_layers, ep, cp), (energy_mwh, time_to_train_days, idx))
               FILTER (WHERE isfinite(energy_mwh)) AS e
    FROM ok GROUP BY sweep, version, model_id, chip_id, tokens, seq_len, cost_basis
),
named AS (
    SELECT m.model, coalesce(ch.chip, 'chip ' || p.chip_id) AS chip, ch.name AS chip_name, p.*
    FROM per_version p
    JOIN models m ON m.sweep = p.sweep AND m.version = p.version AND m.model_id = p.model_id
    LEFT JOIN chips ch ON ch.sweep = p.sweep AND ch.version = p.version AND ch.chip_id = p.chip_id
)
SELECT model, chip, any_value(chip_name) AS chip_name, tokens, seq_len,
       min(t.v) AS best_time_to_train_days,
       arg_min(training_layout(t.n_chips, t.tp, t.pp, t.dp, t.micro_batch, t.interleave, t.recompute, t.zero_stage,
                               offload_layers := t.offload_layers, ep := t.ep, cp := t.cp),
               (t.v, sweep, version, t.idx)) AS fastest_layout,
       min(c.v) AS best_cost_usd,
       arg_min(training_layout(c.n_chips, c.tp, c.pp, c.dp, c.micro_batch, c.interleave, c.recompute, c.zero_stage,
                               offload_layers := c.offload_layers, ep := c.ep, cp := c.cp),
               (c.v, sweep, version, c.idx)) AS cheapest_layout,
       cost_basis,
       min(e.v) AS best_energy_mwh,
       arg_min(training_layout(e.n_chips, e.tp, e.pp, e.dp, e.micro_batch, e.interleave, e.recompute, e.zero_stage,
                               offload_layers := e.offload_layers, ep := e.ep, cp := e.cp),
               (e.v, sweep, version, e.idx)) AS least_energy_layout,
       CAST(sum(configurations) AS BIGINT) AS feasible_configurations
FROM named
GROUP BY model, tokens, seq_len, chip, cost_basis
ORDER BY model, tokens, seq_len, best_time_to_train_days, chip, cost_basis DESC
