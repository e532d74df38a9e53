# Models arrive with their issues.
