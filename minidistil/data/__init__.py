"""Data: the corpus (embedded stdlib prose or user text), a WordPiece tokenizer, batches."""
