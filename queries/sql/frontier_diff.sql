-- frontier_diff: how one sweep's frontier moved between two of its versions -- the configurations that
--   entered it and those that left it, per model (training: time to train vs cost; inference and ASIC
--   sweeps: decode speed vs energy per token vs unit cost). A configuration is matched across versions by
--   what it is (model, chip, layout), so a changed axis cannot shift it; `idx` is its flat configuration
--   index in the version it comes from.
-- @param sweep sweep  the sweep (see `chipsweep history`)
-- @param from_version version(sweep)  the older version
-- @param to_version version(sweep)  the newer version
WITH tr AS NOT MATERIALIZED (
    SELECT f.* FROM training f
    WHERE f.sweep = $sweep AND f.version IN ($from_version, $to_version)
      AND f.fits AND coalesce(f.infeasible_reason, '') = ''
),
tr_front AS (SELECT * FROM pareto(tr, 'time_to_train_days,cost_usd', partition_by := (version, model_id))),
tr_named AS (
    SELECT 'training' AS kind, n.version, n.idx, m.model, coalesce(c.chip, 'chip ' || n.chip_id) AS chip,
           training_layout(n.n_chips, n.tp, n.pp, n.dp, n.micro_batch, n.interleave, n.recompute, n.zero_stage)
               AS layout,
           concat_ws('|', m.model, c.chip, n.n_chips, n.tp, n.pp, n.dp, n.micro_batch, n.interleave, n.recompute,
                     n.zero_stage, n.precision, n.global_batch, n.seq_len, n.tokens) AS config,
           n.time_to_train_days, n.cost_usd, n.energy_mwh,
           CAST(NULL AS FLOAT) AS decode_tokens_per_s, CAST(NULL AS FLOAT) AS energy_per_token_j,
           CAST(NULL AS FLOAT) AS unit_cost_usd
    FROM tr_front n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
    LEFT JOIN chips c ON c.sweep = n.sweep AND c.version = n.version AND c.chip_id = n.chip_id
),
inf AS NOT MATERIALIZED (
    SELECT f.* EXCLUDE (unit_cost_usd),
           CASE WHEN isnan(f.unit_cost_usd) THEN CAST(c.purchase_usd * f.n_chips AS FLOAT)
                ELSE f.unit_cost_usd END AS unit_cost_usd
    FROM inference f
    LEFT JOIN chips c ON c.sweep = f.sweep AND c.version = f.version AND c.chip_id = f.chip_id
    WHERE f.sweep = $sweep AND f.version IN ($from_version, $to_version)
      AND f.fits AND coalesce(f.infeasible_reason, '') = ''
),
inf_front AS (SELECT * FROM pareto(inf, 'decode_tokens_per_s:max,energy_per_token_j,unit_cost_usd',
                                   partition_by := (version, model_id))),
inf_named AS (
    SELECT 'inference' AS kind, n.version, n.idx, m.model, coalesce(c.chip, 'chip ' || n.chip_id) AS chip,
           inference_layout(n.n_chips, n.weight_bits, n.batch) AS layout,
           concat_ws('|', m.model, c.chip, n.n_chips, n.weight_bits, n.kv_bits, n.batch, n.prompt_len, n.gen_len)
               AS config,
           CAST(NULL AS FLOAT) AS time_to_train_days, CAST(NULL AS FLOAT) AS cost_usd,
           CAST(NULL AS FLOAT) AS energy_mwh, n.decode_tokens_per_s, n.energy_per_token_j, n.unit_cost_usd
    FROM inf_front n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
    LEFT JOIN chips c ON c.sweep = n.sweep AND c.version = n.version AND c.chip_id = n.chip_id
),
asic AS NOT MATERIALIZED (
    SELECT f.* FROM asic f
    WHERE f.sweep = $sweep AND f.version IN ($from_version, $to_version)
      AND f.fits AND coalesce(f.infeasible_reason, '') = ''
),
asic_front AS (SELECT * FROM pareto(asic, 'decode_tokens_per_s:max,energy_per_token_j,unit_cost_usd',
                                    partition_by := (version, model_id))),
asic_named AS (
    SELECT 'asic' AS kind, n.version, n.idx, m.model,
           asic_design(n.node_nm, n.n_mac, n.clock_ghz, n.sram_mb, n.dram, n.dram_bus_bits) AS chip,
           asic_layout(n.precision, n.weight_bits, n.batch) AS layout,
           concat_ws('|', m.model, n.node_nm, n.n_mac, n.clock_ghz, n.sram_mb, n.dram, n.dram_bus_bits, n.precision,
                     n.weight_bits, n.batch, n.prompt_len, n.gen_len) AS config,
           CAST(NULL AS FLOAT) AS time_to_train_days, CAST(NULL AS FLOAT) AS cost_usd,
           CAST(NULL AS FLOAT) AS energy_mwh, n.decode_tokens_per_s, n.energy_per_token_j, n.unit_cost_usd
    FROM asic_front n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
),
front AS (SELECT * FROM tr_named UNION ALL SELECT * FROM inf_named UNION ALL SELECT * FROM asic_named),
old AS (SELECT * FROM front WHERE version = $from_version),
new AS (SELECT * FROM front WHERE version = $to_version)
SELECT * FROM (
    SELECT 'entered' AS change, n.* FROM new n ANTI JOIN old o ON o.config = n.config
    UNION ALL
    SELECT 'left' AS change, o.* FROM old o ANTI JOIN new n ON n.config = o.config
)
ORDER BY kind, model, change, time_to_train_days, decode_tokens_per_s DESC, energy_per_token_j, unit_cost_usd,
         chip, layout, idx
