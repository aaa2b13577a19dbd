-- Speech-to-text: a voice message's transcript, set by a later `transcript` entry.
ALTER TABLE messages ADD COLUMN transcript TEXT;
