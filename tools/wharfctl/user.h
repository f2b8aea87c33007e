/* `wharfctl user`: manages the users file ([auth] users_file,
 * auth/users.h): add, passwd, del, list. Passwords come from stdin (one
 * line) or, on a terminal, a prompt without echo; none is ever printed.
 * The file is rewritten atomically (a temporary file, fsync, rename),
 * mode 0600. */
#ifndef WHARF_WHARFCTL_USER_H
#define WHARF_WHARFCTL_USER_H

/* argv[0] is "user". Returns the process's exit status. */
int wharfctl_user(int argc, char **argv);

#endif
