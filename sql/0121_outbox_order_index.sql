-- A dispatcher claims a message only when no earlier message of the same order is unsent: this
-- index answers that per candidate without reading the sent history.
CREATE INDEX outbox_unsent_order ON outbox (order_id, id) WHERE sent_at IS NULL;
