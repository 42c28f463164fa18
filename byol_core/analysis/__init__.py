"""Analysis of trained encoders: where they fail (:mod:`.error_analysis`) and their embeddings (:mod:`.embeddings`)."""
