"""The offline miniature speech-text world."""
