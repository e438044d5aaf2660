-- The roster through a school year (issue 24): a school can be closed (閉校・統合). Its
-- accounts are closed with it (closed_reason 'school_closed'); the row stays, so past
-- broadcasts and the audit log still name it.
ALTER TABLE organisations ADD COLUMN closed_at timestamptz;
