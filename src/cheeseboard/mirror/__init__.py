"""The upstream side of mirror indexes: fetching, parsing and enriching upstream pages."""
