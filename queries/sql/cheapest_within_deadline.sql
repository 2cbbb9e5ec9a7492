-- cheapest_within_deadline: for each chip, the cheapest feasible way to train one model that finishes
--   within the deadline -- its layout, cluster size, cost and time -- over the latest version of every
--   sweep, or of one sweep. Chips that cannot make the deadline are absent; chips that can but have no price
--   in the catalog are named under the table. Each workload (training tokens and sequence length) is ranked
--   on its own: a sweep of fewer tokens is not a cheaper way to train more; and each cost basis (rental prices,
--   or the owned cluster's TCO, as a sweep's cost_basis axis can give both) on its own, unless cost_basis picks one.
-- @param model model  catalog model id, e.g. llama2_70b
-- @param days positive  the deadline: time to train of at most this many days
-- @param sweep sweep = null  only this sweep (default: the latest version of every sweep)
-- @param cost_basis choice(rental|owned) = null  compare costs on one basis (default: each basis its own ranking)
-- @ranks cost_usd
WITH ok AS NOT MATERIALIZED (
    SELECT f.* FROM latest_training f
    WHERE f.fits AND coalesce(f.infeasible_reason, '') = ''
      AND f.time_to_train_days <= $days AND has_value(f.cost_usd) AND isfinite(f.time_to_train_days)
      AND ($sweep IS NULL OR f.sweep = $sweep)
      AND ($cost_basis IS NULL OR f.cost_basis = $cost_basis)
      AND (f.sweep, f.version, f.model_id) IN (SELECT sweep, version, model_id FROM models WHERE model = $model)
),
-- one pass: the cheapest row per chip and cost basis of each sweep version (ties: faster, then lower idx)
per_version AS (
    SELECT sweep, version, model_id, chip_id, tokens, seq_len, cost_basis,
           arg_min(struct_pack(idx, n_chips, tp, pp, ep, cp, dp, micro_batch, interleave, recompute, zero_stage,
                               offload_layers, precision, global_batch, cost_usd,
                               time_to_train_days, energy_mwh, tokens_per_s, mfu),
                   (cost_usd, time_to_train_days, idx)) AS best,
           count(*) AS configurations
    FROM ok GROUP BY sweep, version, model_id, chip_id, tokens, seq_len, cost_basis
),
named AS (
    SELECT m.model, coalesce(c.chip, 'chip ' || p.chip_id) AS chip, c.name AS chip_name, p.sweep, p.version,
           p.tokens, p.seq_len, p.cost_basis, p.configurations, unnest(p.best)
    FROM per_version p
    JOIN models m ON m.sweep = p.sweep AND m.version = p.version AND m.model_id = p.model_id
    LEFT JOIN chips c ON c.sweep = p.sweep AND c.version = p.version AND c.chip_id = p.chip_id
)
SELECT model, chip, chip_name,
       training_layout(n_chips, tp, pp, dp, micro_batch, interleave, recompute, zero_stage,
                       offload_layers := offload_layers, ep := ep, cp := cp) AS layout,
       cost_usd, cost_basis, time_to_train_days, energy_mwh, tokens_per_s, mfu, n_chips, tp, pp, ep, cp, dp,
       micro_batch, interleave,
       recompute, zero_stage, offload_layers, precision, global_batch, seq_len, tokens,
       CAST(sum(configurations) OVER (PARTITION BY chip, tokens, seq_len, cost_basis) AS BIGINT)
           AS configurations_within_deadline,
       sweep, version, idx
FROM named
QUALIFY row_number() OVER (PARTITION BY chip, tokens, seq_len, cost_basis
                           ORDER BY cost_usd, time_to_train_days, sweep, version, idx) = 1
ORDER BY tokens, seq_len, cost_basis DESC, cost_usd, time_to_train_days, chip
