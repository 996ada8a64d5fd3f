"""The user guide: its markdown pages, the search index built from them, page reads and readers' feedback."""
