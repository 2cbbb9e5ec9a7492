-- pareto_edge: the non-dominated ways to serve one model at the edge -- catalog inference chips and
--   hypothetical ASIC designs together -- by decode speed (tokens/s per sequence, maximised), energy per
--   token and unit cost (the ASIC's, or the purchase price of the catalog chips serving one replica),
--   over the latest version of every sweep, or of one sweep. Each row is judged at one operating point:
--   a catalog chip at its serving point (its concurrency: tokens/s per user, 1 / TPOT, with that point's energy
--   per token and TTFT; `batch` shows the concurrency), an ASIC at its batch the same way (its decode rate per
--   sequence, the energy per token with the prompt's prefill, TTFT apart). One frontier per model and workload
--   (prompt_len, gen_len): a longer prompt is another question, not a worse answer. Where unit cost is an
--   objective, each cost scope is its own frontier: an ASIC's manufacturing cost (its packaged die and DRAM, no
--   board, no design cost), the price of an accelerator that runs in a host computer (a card, a module, a USB stick),
--   and the price of a complete system (a developer kit, a desktop): a $30 die never dominates a $249 kit.
-- @param model model = null  catalog model id, e.g. llama2_7b (default: every model, each its own frontier)
-- @param sweep sweep = null  only this sweep (default: the latest version of every sweep)
-- @param prompt_len int = null  only this workload's prompt length (default: every workload, each its own frontier)
-- @param gen_len int = null  only this workload's generated length (default: every workload)
-- @param cost_scope choice(manufacturing|accelerator|system) = null  only this cost scope: manufacturing (ASIC designs), accelerator or system (what a catalog chip's purchase price buys; default: each scope its own frontier where unit_cost_usd is an objective)
-- @param objectives objectives(edge) = decode_tokens_per_s:max,energy_per_token_j,unit_cost_usd  two or three of the edge objectives
-- @plot
-- @note decode_tokens_per_s is per sequence at the row's operating point: a catalog chip's tokens/s per user at its
-- @note serving point (the lake's tokens_per_s_per_user, 1 / TPOT, not its static-batch decode_tokens_per_s), an ASIC's
-- @note decode rate per sequence at its batch.
WITH models_wanted AS (SELECT sweep, version, model_id FROM models WHERE $model IS NULL OR model = $model),
inference_rows AS NOT MATERIALIZED (
    SELECT 'inference' AS source, f.sweep, f.version, f.idx, f.model_id, f.chip_id,
           -- the serving point: a blank batch is the largest static batch that fits, while the energy per
           -- token, power and TTFT are those of the row's concurrency (one user on a llama.cpp chip)
           f.n_chips, f.weight_bits, f.kv_bits, CAST(f.concurrency AS INTEGER) AS batch, f.prompt_len, f.gen_len,
           CAST(NULL AS FLOAT) AS node_nm, CAST(NULL AS INTEGER) AS n_mac, CAST(NULL AS FLOAT) AS clock_ghz,
           CAST(NULL AS FLOAT) AS sram_mb, CAST(NULL AS VARCHAR) AS dram, CAST(NULL AS SMALLINT) AS dram_bus_bits,
           CAST(NULL AS FLOAT) AS dram_mt_s, CAST(NULL AS FLOAT) AS dram_gb, CAST(NULL AS VARCHAR) AS arch,
           CAST(NULL AS VARCHAR) AS yield_model, CAST(NULL AS FLOAT) AS d0_per_cm2, CAST(NULL AS INTEGER) AS tiles,
           CAST(NULL AS INTEGER) AS spare_tiles, CAST(NULL AS VARCHAR) AS precision,
           f.tokens_per_s_per_user AS decode_tokens_per_s, f.energy_per_token_j, f.ttft_s,
           -- a catalog chip without a unit cost in the facts (NULL; NaN in files written before 2026-12-06) is
           -- priced from its purchase price
           CASE WHEN f.unit_cost_usd IS NULL OR isnan(f.unit_cost_usd) THEN CAST(c.purchase_usd * f.n_chips AS FLOAT)
                ELSE f.unit_cost_usd END AS unit_cost_usd,
           f.power_w, CAST(NULL AS FLOAT) AS die_area_mm2, f.calibrated_on, CAST(NULL AS VARCHAR) AS notes,
           cost_scope(c.purchase_scope, c.class) AS cost_scope
    FROM latest_inference f
    LEFT JOIN chips c ON c.sweep = f.sweep AND c.version = f.version AND c.chip_id = f.chip_id
    WHERE f.fits AND coalesce(f.infeasible_reason, '') = ''
      AND ($cost_scope IS NULL OR cost_scope(c.purchase_scope, c.class) = $cost_scope)
      AND ($sweep IS NULL OR f.sweep = $sweep)
      AND ($prompt_len IS NULL OR f.prompt_len = $prompt_len) AND ($gen_len IS NULL OR f.gen_len = $gen_len)
      AND (f.sweep, f.version, f.model_id) IN (SELECT * FROM models_wanted)
),
asic_rows AS NOT MATERIALIZED (
    SELECT 'asic' AS source, f.sweep, f.version, f.idx, f.model_id, CAST(NULL AS SMALLINT) AS chip_id,
           CAST(1 AS SMALLINT) AS n_chips, f.weight_bits, f.kv_bits, f.batch,
           f.prompt_len, f.gen_len, f.node_nm, f.n_mac, f.clock_ghz, f.sram_mb, f.dram, f.dram_bus_bits,
           f.dram_mt_s, f.dram_gb, f.arch, f.yield_model, f.d0_per_cm2, f.tiles, f.spare_tiles, f.precision,
           f.decode_tokens_per_s,
           f.energy_per_token_j, f.ttft_s, f.unit_cost_usd, f.power_w, f.die_area_mm2,
           CAST(NULL AS VARCHAR) AS calibrated_on, CAST(f.notes AS VARCHAR) AS notes,
           'manufacturing' AS cost_scope
    FROM latest_asic f
    WHERE f.fits AND coalesce(f.infeasible_reason, '') = ''
      AND coalesce($cost_scope, 'manufacturing') = 'manufacturing'
      AND ($sweep IS NULL OR f.sweep = $sweep)
      AND ($prompt_len IS NULL OR f.prompt_len = $prompt_len) AND ($gen_len IS NULL OR f.gen_len = $gen_len)
      AND (f.sweep, f.version, f.model_id) IN (SELECT * FROM models_wanted)
),
edge AS NOT MATERIALIZED (SELECT * FROM inference_rows UNION ALL SELECT * FROM asic_rows),
near AS (SELECT * FROM pareto(edge, $objectives, partition_by := (source, sweep, version, model_id, prompt_len, gen_len, cost_scope))),
named AS (
    SELECT n.*, m.model,
           CASE WHEN n.source = 'asic' THEN asic_design(n.node_nm, n.n_mac, n.clock_ghz, n.sram_mb, n.dram, n.dram_bus_bits, n.arch)
                ELSE c.chip END AS chip,
           coalesce(c.name, 'hypothetical ASIC') AS chip_name
    FROM near n
    JOIN models m ON m.sweep = n.sweep AND m.version = n.version AND m.model_id = n.model_id
    LEFT JOIN chips c ON c.sweep = n.sweep AND c.version = n.version AND c.chip_id = n.chip_id
)
SELECT source, model, chip, chip_name,
       CASE WHEN source = 'asic' THEN asic_layout(n.precision, weight_bits, batch)
            ELSE inference_layout(n_chips, weight_bits, batch) END AS layout,
       decode_tokens_per_s, energy_per_token_j, unit_cost_usd, cost_scope, ttft_s, power_w, die_area_mm2,
       n_chips, weight_bits, kv_bits, batch, prompt_len, gen_len, node_nm, n_mac, clock_ghz, sram_mb, dram,
       dram_bus_bits, dram_mt_s, dram_gb, arch, yield_model, d0_per_cm2, tiles, spare_tiles, n.precision,
       calibrated_on, notes, sweep, version, idx
FROM pareto(named, $objectives, partition_by := (model, prompt_len, gen_len, cost_scope)) n
-- a configuration in two sweeps (overlapping grids) is one point: kept from the first sweep by name
QUALIFY sweep = min(sweep) OVER (PARTITION BY source, model, prompt_len, gen_len, chip, layout, kv_bits, $objectives.columns)
ORDER BY model, prompt_len, gen_len, cost_scope, decode_tokens_per_s DESC, energy_per_token_j, unit_cost_usd, source, idx
