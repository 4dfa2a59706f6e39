-- Deals the exchange executed after their product's gate closure (continuous intraday trading of
-- a product closes FEED_GATE_CLOSURE_MINUTES before its delivery starts), as the exchange
-- gateway flags them while parsing. They are stored like every other deal (the exchange did
-- execute them); the flag lets operators and analysts find them.
ALTER TABLE trades ADD COLUMN after_gate_closure boolean NOT NULL DEFAULT false;

-- Rare by nature: a partial index lists them without scanning the table.
CREATE INDEX trades_after_gate_closure ON trades (execution_time) WHERE after_gate_closure;
