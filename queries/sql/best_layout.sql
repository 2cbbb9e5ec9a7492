-- best_layout: for one model and one cluster size, the best parallel layout on each chip (tensor,
--   pipeline, data parallel sizes, micro-batch, interleaving, recomputation, ZeRO stage) by the chosen
--   objective -- fastest by default -- over the latest version of every sweep, or of one sweep. Each workload
--   (training tokens and sequence length) is ranked on its own, and, where cost_usd is the objective, each cost
--   basis (rental prices, or the owned cluster's TCO) on its own unless cost_basis picks one.
-- @param model model  catalog model id, e.g. llama2_70b
-- @param n_chips int  chips in the job (the cluster size)
-- @param objective choice(time_to_train_days|cost_usd|energy_mwh|tokens_per_s|mfu|step_time_s|mem_per_chip_gb|co2_t) = time_to_train_days  what best means; tokens_per_s and mfu are maximised, the others minimised
-- @param sweep sweep = null  only this sweep (default: the latest version of every sweep)
-- @param cost_basis choice(rental|owned) = null  only rows costed on this basis (default: both; with objective cost_usd each basis ranked apart)
-- @ranks $objective
WITH ok AS NOT MATERIALIZED (
    SELECT * FROM (
        SELECT f.*,
               CASE $objective WHEN 'time_to_train_days' THEN f.time_to_train_days WHEN 'cost_usd' THEN f.cost_usd
                    WHEN 'energy_mwh' THEN f.energy_mwh WHEN 'tokens_per_s' THEN -f.tokens_per_s
                    WHEN 'mfu' THEN -f.mfu WHEN 'step_time_s' THEN f.step_time_s
                    WHEN 'mem_per_chip_gb' THEN f.mem_per_chip_gb WHEN 'co2_t' THEN f.co2_t END AS score,
               -- a cost is ranked against costs of its own basis only
               CASE WHEN $objective = 'cost_usd' THEN f.cost_basis END AS basis_rank
        FROM latest_training f
        WHERE f.fits AND coalesce(f.infeasible_reason, '') = '' AND f.n_chips = $n_chips
          AND ($sweep IS NULL OR f.sweep = $sweep)
          AND ($cost_basis IS NULL OR f.cost_basis = $cost_basis)
          AND (f.sweep, f.version, f.model_id) IN (SELECT sweep, version, model_id FROM models WHERE model = $model)
    ) WHERE has_value(score)
),
per_version AS (
    SELECT sweep, version, model_id, chip_id, tokens, seq_len, basis_rank,
           arg_min(struct_pack(idx, score, n_chips, tp, pp, ep, cp, dp, micro_batch, interleave, recompute, zero_stage,
                               offload_layers, precision, global_batch, time_to_train_days, cost_usd, cost_basis,
                               energy_mwh, tokens_per_s, mfu, step_time_s, mem_per_chip_gb),
                   (score, time_to_train_days, cost_usd, idx)) AS best,
           count(*) AS layouts
    FROM ok GROUP BY sweep, version, model_id, chip_id, tokens, seq_len, basis_rank
),
named AS (
    SELECT m.model, coalesce(c.chip, 'chip ' || p.chip_id) AS chip, c.name AS chip_name, p.sweep, p.version,
           p.tokens, p.seq_len, p.basis_rank, p.layouts, unnest(p.best)
    FROM per_version p
    JOIN models m ON m.sweep = p.sweep AND m.version = p.version AND m.model_id = p.model_id
    LEFT JOIN chips c ON c.sweep = p.sweep AND c.version = p.version AND c.chip_id = p.chip_id
)
SELECT model, chip, chip_name,
       training_layout(n_chips, tp, pp, dp, micro_batch, interleave, recompute, zero_stage,
                       offload_layers := offload_layers, ep := ep, cp := cp) AS layout,
       $objective AS objective, time_to_train_days, cost_usd, cost_basis, energy_mwh, tokens_per_s, mfu, step_time_s,
       mem_per_chip_gb, n_chips, tp, pp, ep, cp, dp, micro_batch, interleave, recompute, zero_stage, offload_layers,
       precision, global_batch, seq_len, tokens,
       CAST(sum(layouts) OVER (PARTITION BY chip, tokens, seq_len, basis_rank) AS BIGINT) AS feasible_layouts,
       sweep, version, idx
FROM named
QUALIFY row_number() OVER (PARTITION BY chip, tokens, seq_len, basis_rank
                           ORDER BY score, time_to_train_days, cost_usd, sweep, version, idx) = 1
ORDER BY tokens, seq_len, basis_rank DESC, score, cost_usd, chip
