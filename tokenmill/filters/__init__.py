"""Document filters, one file per family. Each is a `tokenmill.stage.Stage` that sets `drop_reason`."""
