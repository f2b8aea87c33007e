#include "config.h"
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int privs_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid, char *err,
		 size_t errlen)
{
	errno = 0;
	const struct passwd *pw = getpwnam(user);
	if (!pw) {
		snprintf(err, errlen, "user %s: %s", user, errno ? strerror(errno) : "no such user");
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group) {
		errno = 0;
		const struct group *gr = getgrnam(group);
		if (!gr) {
			snprintf(err, errlen, "group %s: %s", group,
				 errno ? strerror(errno) : "no such group");
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

int privs_drop(const char *user, const char *group, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;
	if (privs_lookup(user, group, &uid, &gid, err, errlen) < 0)
		return -1;
	if (getuid() == uid && geteuid() == uid && getgid() == gid && getegid() == gid)
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errlen, "cannot become user %s: running as uid %u, not root", user,
			 (unsigned)geteuid());
		return -1;
	}
	/* Groups before the uid: once it is not root, it may change neither. */
	if (initgroups(user, gid) < 0) {
		snprintf(err, errlen, "initgroups(%s): %s", user, strerror(errno));
		return -1;
	}
	if (setgid(gid) < 0) {
		snprintf(err, errlen, "setgid(%u): %s", (unsigned)gid, strerror(errno));
		return -1;
	}
	if (setuid(uid) < 0) {
		snprintf(err, errlen, "setuid(%u): %s", (unsigned)uid, strerror(errno));
		return -1;
	}
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errlen, "became user %s, but root could be had back", user);
		return -1;
	}
	return 0;
}

int privs_assume(const char *user, const char *group, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;
	if (!user || geteuid() != 0)
		return 0;
	if (privs_lookup(user, group, &uid, &gid, err, errlen) < 0)
		return -1;
	if (initgroups(user, gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0) {
		snprintf(err, errlen, "cannot take the ids of user %s: %s", user, strerror(errno));
		return -1;
	}
	return 0;
}

int privs_resume_root(char *err, size_t errlen)
{
	if (getuid() != 0 || geteuid() == 0)
		return 0;
	if (seteuid(0) < 0 || setegid(0) < 0) {
		snprintf(err, errlen, "cannot take root back: %s", strerror(errno));
		return -1;
	}
	return 0;
}
