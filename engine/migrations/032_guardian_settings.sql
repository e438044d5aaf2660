-- Guardians' settings and the school calendar (issue 24).
--
-- A contact may keep receiving emergencies only (「緊急連絡だけは受け取る」) instead of leaving:
-- the audience skips it for everything that is not an emergency (category or priority).
ALTER TABLE contacts ADD COLUMN emergency_only boolean NOT NULL DEFAULT false;

-- A group a contact receives through its child's membership (account_groups, e.g. PTA from the
-- CSV) or a group the school put it in, unchecked on the settings page: mail addressed to that
-- group no longer reaches this contact. The child stays in the group (the other guardian
-- still receives); mail addressed to the school, grade or class is not affected.
CREATE TABLE contact_group_optouts (
    contact_id bigint      NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    group_id   bigint      NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (group_id, contact_id)
);
CREATE INDEX contact_group_optouts_by_contact ON contact_group_optouts (contact_id);

-- Days a school is closed beyond weekends and Japanese public holidays (開校記念日, 振替休業日,
-- 長期休業 ...): absence, lateness and early-leave reports are refused for them.
CREATE TABLE school_closures (
    school_id  bigint      NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    day        date        NOT NULL,
    note       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    PRIMARY KEY (school_id, day)
);

-- Lateness takes the expected arrival time, early leave the leaving time (Japan time).
ALTER TABLE attendance_reports ADD COLUMN at_time time;
