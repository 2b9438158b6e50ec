"""People who use the console: accounts and roles, two-factor codes, single sign-on."""
