"""People across lists: looking them up, correcting them, exporting and erasing what is held."""
