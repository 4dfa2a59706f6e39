-- Earlier versions of the server adapter encoded JSON twice, so on a TimescaleDB server these
-- columns may hold a JSON string whose text is the intended value ("{\"threshold\":0.5}"). None of
-- them ever holds a string legitimately: decode those once. The embedded database stored them right
-- and has nothing to change. Reconciliations computed from such rows listed every field as
-- different; POST /v1/reconciliations {"import_id": N} computes one again.
UPDATE algorithm_runs SET params = (params #>> '{}')::jsonb WHERE jsonb_typeof(params) = 'string';
UPDATE feed_conflicts SET stored = (stored #>> '{}')::jsonb WHERE jsonb_typeof(stored) = 'string';
UPDATE feed_conflicts SET received = (received #>> '{}')::jsonb WHERE jsonb_typeof(received) = 'string';
UPDATE import_conflicts SET differences = (differences #>> '{}')::jsonb WHERE jsonb_typeof(differences) = 'string';
UPDATE import_conflicts SET file_trade = (file_trade #>> '{}')::jsonb WHERE jsonb_typeof(file_trade) = 'string';
UPDATE reconciliation_items SET fields = (fields #>> '{}')::jsonb WHERE jsonb_typeof(fields) = 'string';
