"""Pure domain logic: names, files, page models and HTTP decisions. No I/O lives here."""
