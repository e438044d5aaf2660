"""The guardians' and citizens' pages, one router per page family."""
