"""Speech-text data: readers, vocabulary extension, interleaving, streams and packing."""
