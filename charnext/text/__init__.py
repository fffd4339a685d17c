"""Text and vocabulary: the characters, reading text and lines, prepared token files."""
