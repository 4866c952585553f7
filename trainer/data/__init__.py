"""The data a run trains and is scored on: corpora found and read, BPE, token ids and their batches."""
