"""Training machinery. Imported only by the training commands and tests, never by upscale."""
