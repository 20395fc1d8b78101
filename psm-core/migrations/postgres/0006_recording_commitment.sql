-- What a gateway committed to about its recording at EndSession (docs/threat-model.md M12):
-- psm_core::RecordingCommitment's canonical text, `blake3:<hex> chunks=N events=N`.
ALTER TABLE sessions ADD COLUMN recording_commitment TEXT;
