-- Health questions a school's administrators stopped asking (the settings screen's 「使わない」):
-- kept beside the asked ones so they can be asked again and so earlier health notes still show
-- their answers. Same JSON form as health_questions (engine/twoway/questions.py); a key is in
-- one of the two lists at most.
ALTER TABLE report_settings
    ADD COLUMN health_questions_off jsonb NOT NULL DEFAULT '[]'::jsonb;
