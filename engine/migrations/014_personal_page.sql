-- A broadcast whose mails carry a link to each recipient's personal page (issues 12 and 13):
-- set when it asks for read confirmation, carries questions or has attachments. The runner
-- reads it with the broadcast's content and adds the page link to every mail's text.
ALTER TABLE broadcasts ADD COLUMN personal_page boolean NOT NULL DEFAULT false;
