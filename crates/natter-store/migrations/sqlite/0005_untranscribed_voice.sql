-- Voice messages still waiting for their transcript: a process that starts re-queues them (a
-- crash loses the jobs of the in-memory queue). Only those rows, so the index stays tiny.
CREATE INDEX messages_untranscribed_voice ON messages (created_at)
    WHERE kind = 'voice' AND transcript IS NULL AND recalled = 0;
