"""One run: the stages (feeds, pages, documents), the article stream, the process pool, progress, the Prefect flows."""
