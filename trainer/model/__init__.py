"""The models (Transformer, GRU seq2seq), their parts (masks, dropout) and the FLOPs of a training step."""
