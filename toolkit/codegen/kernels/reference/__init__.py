"""The reference kernel set: TFLite reference-kernel arithmetic in portable C99."""
