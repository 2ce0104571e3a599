-- Session lists of a caller whose grant names a product (a product manager's token) filter on
-- product_id and page by (create_time DESC, id DESC) (db/sessions.c). Without an index on the
-- product every such list scanned the table to count, and walked sessions_created past other
-- products' rows to reach a page. The index is in the list's order, so the page needs no sort;
-- target_firmware_id is the one more column the visibility condition reads (a draft target is
-- restricted), so the count and the page's ids are read from the index alone.
-- Measured in docs/performance.md.
CREATE INDEX sessions_product ON sessions(product_id, create_time, id, target_firmware_id);
