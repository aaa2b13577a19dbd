-- Storing an entry moves its conversation's last_seq and updated_at and its sender's read
-- marker in the same statement, so that a plain send is one INSERT on SQLite's single writer
-- (its seq is taken from last_seq inside that INSERT; see messages.rs). PostgreSQL does these
-- updates as statements of the append transaction instead.
CREATE TRIGGER messages_appended AFTER INSERT ON messages
BEGIN
    UPDATE conversations SET last_seq = NEW.seq, updated_at = NEW.created_at
        WHERE id = NEW.conversation_id AND last_seq < NEW.seq;
    UPDATE members SET read_seq = NEW.seq
        WHERE conversation_id = NEW.conversation_id AND user_id = NEW.sender_id AND read_seq < NEW.seq;
END;
