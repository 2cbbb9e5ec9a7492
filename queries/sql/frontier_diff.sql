-- frontier_diff: how one sweep's frontier moved between two of its versions -- the configurations that
--   entered it and those that left it, per model (training: time to train vs cost, each cost basis its own
--   frontier as in pareto_training; inference and ASIC sweeps: decode speed vs energy per token vs unit cost
--   as in pareto_edge, or with frontier=serving output tokens/s per chip vs tokens/s per user per workload as
--   in pareto_serving). A configuration is matched across versions by what it is (model, chip, layout), so a
--   changed axis cannot shift it; `idx` is its flat configuration index in the version it comes from.
-- @param sweep sweep  the sweep (see `chipsweep history`)
-- @param from_version version(sweep)  the older version
-- @param to_version version(sweep)  the newer version
-- @param frontier choice(edge|serving|serving_cost) = null  an inference sweep's frontier: edge (pareto_edge's objectives), serving (pareto_serving's) or serving_cost (pareto_serving's with USD per million tokens as a third objective: where a price change shows); default: serving where the newer version's spec sets concurrency, else edge
WITH mode AS (
    SELECT coalesce($frontier, (
        SELECT CASE WHEN json_extract(spec_json, '$.axes.concurrency') IS NOT NULL
                         OR json_extract(spec_json, '$.fixed.concurrency') IS NOT NULL THEN 'serving' END
        FROM versions WHERE sweep = $sweep AND version = $to_version), 'edge') AS frontier
),
tr AS NOT MATERIALIZED (
    SELECT f.* FROM training f
    WHERE f.sweep = $sweep AND f.version IN ($from_version, $to_version)
      AND f.fits AND coalesce(f.infeasible_reason, '') = ''
),
tr_front AS (SELECT * FROM pareto(tr, 'time_to_train_days,cost_usd',
                                  partition_by := (version, model_id, cost_basis, tokens, seq_len))),
tr_named AS (
    SELECT 'training' AS kind, n.version, n.idx, m.model, coalesce(c.chip, 'chip ' || n.chip_id) AS chip,
           training_layout(n.n_chips, n.tp, n.pp, n.dp, n.micro_batch, n.interleave, n.recompute, n.zero_stage,
                           offload_layers := n.offload_layers, ep := n.ep, cp := n.cp) AS layout,
           -- every input that tells two configurations apart (a blank one kept in its place as NULL): each input
           -- column of the training facts, the settings without a column of their own (what_if), the stage split
           CAST(ROW(
               m.model, c.chip, n.cost_basis, n.framework, n.n_chips, n.tp, n.pp, n.ep, n.cp, n.dp, n.micro_batch,
                n.interleave, n.recompute, n.zero_stage, n.offload_layers, n.first_stage_layers, n.last_stage_layers,
                n.precision, n.global_batch, n.seq_len, n.tokens, n.moe_experts, n.moe_topk, n.moe_ffn_hidden,
                n.moe_shared_experts, n.moe_dense_layers, n.mtp_layers, n.bf16_first_layers, n.bf16_last_layers,
                n.pp_schedule, n.expert_tp, n.moe_imbalance, n.moe_a2a_overlap, n.moe_capacity_factor,
                n.what_if) AS VARCHAR) AS config,
           n.cost_basis, CAST(NULL AS VARCHAR) AS cost_scope, n.time_to_train_days, n.cost_usd, n.energy_mwh,
           CAST(NULL AS FLOAT) AS decode_tokens_per_s, CAST(NULL AS FLOAT) AS energy_per_token_j,
           CAST(NULL AS FLOAT) AS unit_cost_usd, CAST(NULL AS FLOAT) AS output_tokens_per_s_per_chip,
           CAST(NULL AS FLOAT) AS tokens_per_s_per_user, CAST(NULL AS FLOAT) AS usd_per_million_tokens
    FROM tr_front n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
    LEFT JOIN chips c ON c.sweep = n.sweep AND c.version = n.version AND c.chip_id = n.chip_id
),
inf AS NOT MATERIALIZED (
    -- pareto_edge's measures: the serving point's tokens/s per user, the purchase price where no unit cost, and
    -- what that price buys (an accelerator's never on one frontier with a whole system's)
    SELECT f.* EXCLUDE (unit_cost_usd, decode_tokens_per_s),
           CASE WHEN f.unit_cost_usd IS NULL OR isnan(f.unit_cost_usd) THEN CAST(c.purchase_usd * f.n_chips AS FLOAT)
                ELSE f.unit_cost_usd END AS unit_cost_usd,
           f.tokens_per_s_per_user AS decode_tokens_per_s, cost_scope(c.purchase_scope, c.class) AS cost_scope
    FROM inference f
    LEFT JOIN chips c ON c.sweep = f.sweep AND c.version = f.version AND c.chip_id = f.chip_id
    WHERE f.sweep = $sweep AND f.version IN ($from_version, $to_version)
      AND f.fits AND coalesce(f.infeasible_reason, '') = '' AND (SELECT frontier FROM mode) = 'edge'
),
inf_front AS (SELECT * FROM pareto(inf, 'decode_tokens_per_s:max,energy_per_token_j,unit_cost_usd',
                                   partition_by := (version, model_id, prompt_len, gen_len, cost_scope))),
inf_named AS (
    SELECT 'inference' AS kind, n.version, n.idx, m.model, coalesce(c.chip, 'chip ' || n.chip_id) AS chip,
           inference_layout(n.n_chips, n.weight_bits, n.batch) AS layout,
           -- every input column of the serving facts (the concurrency is the edge point's batch) and what_if
           CAST(ROW(
               m.model, c.chip, n.n_chips, n.weight_bits, n.kv_bits, n.batch, n.prompt_len, n.gen_len, n.engine,
                n.compute_precision, n.pp, n.ep, n.ep_dedup, n.dp_attention, n.concurrency, n.disaggregated,
                n.prefill_instances, n.decode_instances, n.scheduler_steps, n.ssm_state_bits, n.async_scheduling, n.what_if, n.cost_scope) AS VARCHAR) AS config,
           CAST(NULL AS VARCHAR) AS cost_basis, n.cost_scope, CAST(NULL AS FLOAT) AS time_to_train_days,
           CAST(NULL AS FLOAT) AS cost_usd, CAST(NULL AS FLOAT) AS energy_mwh, n.decode_tokens_per_s,
           n.energy_per_token_j, n.unit_cost_usd, CAST(NULL AS FLOAT) AS output_tokens_per_s_per_chip,
           CAST(NULL AS FLOAT) AS tokens_per_s_per_user, CAST(NULL AS FLOAT) AS usd_per_million_tokens
    FROM inf_front n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
    LEFT JOIN chips c ON c.sweep = n.sweep AND c.version = n.version AND c.chip_id = n.chip_id
),
-- a serving sweep's rows on pareto_serving's objectives, each workload (prompt and output length) its own frontier
srv AS NOT MATERIALIZED (
    SELECT f.* FROM inference f
    WHERE f.sweep = $sweep AND f.version IN ($from_version, $to_version)
      AND f.fits AND coalesce(f.infeasible_reason, '') = '' AND (SELECT frontier FROM mode) = 'serving'
),
-- ... or with the cost per million tokens as a third objective (a price change moves this one)
srv_cost AS NOT MATERIALIZED (
    SELECT f.* FROM inference f
    WHERE f.sweep = $sweep AND f.version IN ($from_version, $to_version)
      AND f.fits AND coalesce(f.infeasible_reason, '') = '' AND (SELECT frontier FROM mode) = 'serving_cost'
),
srv_front AS (SELECT * FROM pareto(srv, 'output_tokens_per_s_per_chip:max,tokens_per_s_per_user:max',
                                   partition_by := (version, model_id, prompt_len, gen_len))
              UNION ALL
              -- rental and owned costs apart, as pareto_serving keeps them
              SELECT * FROM pareto(srv_cost,
                                   'output_tokens_per_s_per_chip:max,tokens_per_s_per_user:max,usd_per_million_tokens',
                                   partition_by := (version, model_id, prompt_len, gen_len, cost_basis))),
srv_named AS (
    SELECT 'serving' AS kind, n.version, n.idx, m.model, coalesce(c.chip, 'chip ' || n.chip_id) AS chip,
           serving_layout(n.n_chips, n.pp, n.ep, n.ep_dedup, n.dp_attention, n.compute_precision, n.weight_bits,
                          n.concurrency, n.ssm_state_bits, n.disaggregated, n.prefill_instances,
                          n.decode_instances) AS layout,
           -- ... and the basis of its cost: a chip whose rental price appears moves from the owned frontier to
           -- the rental one (serving_cost)
           CAST(ROW(
               m.model, c.chip, n.engine, n.n_chips, n.pp, n.ep, n.ep_dedup, n.dp_attention, n.compute_precision,
                n.weight_bits, n.kv_bits, n.concurrency, n.ssm_state_bits, n.disaggregated, n.prefill_instances,
                n.decode_instances, n.async_scheduling,
                n.scheduler_steps, n.prompt_len, n.gen_len, n.batch, n.what_if, n.cost_basis) AS VARCHAR) AS config,
           n.cost_basis, CAST(NULL AS VARCHAR) AS cost_scope, CAST(NULL AS FLOAT) AS time_to_train_days,
           CAST(NULL AS FLOAT) AS cost_usd, CAST(NULL AS FLOAT) AS energy_mwh, n.decode_tokens_per_s,
           n.energy_per_token_j, n.unit_cost_usd, n.output_tokens_per_s_per_chip, n.tokens_per_s_per_user,
           n.usd_per_million_tokens
    FROM srv_front n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
    LEFT JOIN chips c ON c.sweep = n.sweep AND c.version = n.version AND c.chip_id = n.chip_id
),
asic AS NOT MATERIALIZED (
    SELECT f.* FROM asic f
    WHERE f.sweep = $sweep AND f.version IN ($from_version, $to_version)
      AND f.fits AND coalesce(f.infeasible_reason, '') = ''
),
asic_front AS (SELECT * FROM pareto(asic, 'decode_tokens_per_s:max,energy_per_token_j,unit_cost_usd',
                                    partition_by := (version, model_id, prompt_len, gen_len))),
asic_named AS (
    SELECT 'asic' AS kind, n.version, n.idx, m.model,
           asic_design(n.node_nm, n.n_mac, n.clock_ghz, n.sram_mb, n.dram, n.dram_bus_bits, n.arch) AS chip,
           asic_layout(n.precision, n.weight_bits, n.batch) AS layout,
           CAST(ROW(
               m.model, n.node_nm, n.n_mac, n.clock_ghz, n.sram_mb, n.dram, n.dram_bus_bits, n.precision,
                n.weight_bits, n.batch, n.prompt_len, n.gen_len, n.dram_mt_s, n.dram_gb, n.kv_bits, n.arch,
                n.yield_model, n.d0_per_cm2, n.tiles, n.spare_tiles) AS VARCHAR) AS config,
           CAST(NULL AS VARCHAR) AS cost_basis, 'manufacturing' AS cost_scope, CAST(NULL AS FLOAT) AS time_to_train_days,
           CAST(NULL AS FLOAT) AS cost_usd, CAST(NULL AS FLOAT) AS energy_mwh, n.decode_tokens_per_s,
           n.energy_per_token_j, n.unit_cost_usd, CAST(NULL AS FLOAT) AS output_tokens_per_s_per_chip,
           CAST(NULL AS FLOAT) AS tokens_per_s_per_user, CAST(NULL AS FLOAT) AS usd_per_million_tokens
    FROM asic_front n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
),
front AS (SELECT * FROM tr_named UNION ALL SELECT * FROM inf_named UNION ALL SELECT * FROM srv_named
          UNION ALL SELECT * FROM asic_named),
old AS (SELECT * FROM front WHERE version = $from_version),
new AS (SELECT * FROM front WHERE version = $to_version)
SELECT * FROM (
    SELECT 'entered' AS change, n.* FROM new n ANTI JOIN old o ON o.config = n.config
    UNION ALL
    SELECT 'left' AS change, o.* FROM old o ANTI JOIN new n ON n.config = o.config
)
ORDER BY kind, model, change, cost_basis DESC, cost_scope, time_to_train_days, output_tokens_per_s_per_chip DESC,
         decode_tokens_per_s DESC, energy_per_token_j, unit_cost_usd, chip, layout, idx
