-- The operator category (engine/bounce/categories.py) beside the fine reason of a delivery's
-- last failure or deferral, so reports can group by it without reclassifying.
ALTER TABLE deliveries ADD COLUMN category text;
