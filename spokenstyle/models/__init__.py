"""The book's models, one file per family (see BOOK.md section 5)."""
