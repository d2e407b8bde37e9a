"""spec-kitty hygiene: survey the family's ports, classify, report (doctor, ls), clean up."""
