-- A version of each conversation's member set, moved by every statement that adds or removes
-- members (whatever the code path), in the same transaction. Nodes keep member lists in memory
-- and check the version, one primary-key read, instead of reading the whole list per push.
ALTER TABLE conversations ADD COLUMN members_version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION bump_members_version_inserted() RETURNS trigger AS $$
BEGIN
    UPDATE conversations SET members_version = members_version + 1
    WHERE id IN (SELECT DISTINCT conversation_id FROM inserted);
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION bump_members_version_deleted() RETURNS trigger AS $$
BEGIN
    UPDATE conversations SET members_version = members_version + 1
    WHERE id IN (SELECT DISTINCT conversation_id FROM deleted);
    RETURN NULL;
END $$ LANGUAGE plpgsql;

-- Per statement, not per row: a 10,000-member group is created with one bump.
CREATE TRIGGER members_inserted AFTER INSERT ON members
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION bump_members_version_inserted();
CREATE TRIGGER members_deleted AFTER DELETE ON members
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION bump_members_version_deleted();
