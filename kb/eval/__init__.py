"""What measures the product: retrieval evaluation (BEIR, TREC runs, metrics) and question answering."""
