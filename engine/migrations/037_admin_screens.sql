-- The administrators' suppression screen (engine/staff/suppression_view.py) pages the list
-- newest first: by index, not by sorting the whole list on every page.
CREATE INDEX suppressions_by_created ON suppressions (created_at DESC, address_key);
