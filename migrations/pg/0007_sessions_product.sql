-- The index of product-scoped session lists; see migrations/sqlite/0007_sessions_product.sql.
CREATE INDEX sessions_product ON sessions(product_id, create_time, id, target_firmware_id);
