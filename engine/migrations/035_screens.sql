-- The staff screens' "new reports" badge counts a school's reports changed since a moment
-- (engine/twoway/staff_views.py): by index, not by reading every report of the school.
CREATE INDEX attendance_reports_by_update ON attendance_reports (school_id, updated_at);
