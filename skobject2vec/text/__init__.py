"""Text: a tokenizer for raw sentence pairs and pretrained token vectors."""

from .pretrained import load_pretrained_table, read_pretrained_vectors, read_vocab_file
from .tokenizer import TextPairTokenizer

__all__ = ["TextPairTokenizer", "load_pretrained_table", "read_pretrained_vectors", "read_vocab_file"]
