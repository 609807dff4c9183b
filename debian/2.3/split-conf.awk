# Turn the project's conf.d/2.3/90-deltapush.conf into the package's conffile:
# the lines that load the plugins, select the push_notification driver and
# define the deltapush service move to /usr/share/dovecot-deltapush/
# deltapush-load.conf (debian/deltapush-load.conf), which the conffile
# includes. "apt-get remove" deletes that file but keeps the conffile, so
# Dovecot still starts without the package's modules and binary.
#
# Fails when the project file no longer has exactly the expected lines, so
# that a change to them is carried over to deltapush-load.conf by hand.
#
#   awk -v load=debian/2.3/deltapush-load.conf -f debian/split-service.awk \
#       -f debian/2.3/split-conf.awk conf.d/2.3/90-deltapush.conf

BEGIN {
	last = "x"
	ncomments = 0
	read_load_service()
}

in_service {
	in_service = service_line($0)
	next
}

/^#/ {
	comments = comments $0 "\n"
	ncomments++
	next
}

$0 == "mail_plugins = $mail_plugins notify push_notification deltapush" {
	drop_comments()
	found_mail_plugins++
	emit("# Debian: the plugins (mail_plugins), the push_notification driver")
	emit("# and service deltapush are set in the file included here. Removing")
	emit("# the package deletes it but keeps this file, so Dovecot still")
	emit("# starts afterwards.")
	emit("!include_try /usr/share/dovecot-deltapush/deltapush-load.conf")
	next
}

$0 == "service deltapush {" {
	drop_comments()
	found_service++
	in_service = 1
	service_depth = 1
	next
}

$0 == "  mail_plugins = $mail_plugins imap_deltapush" {
	found_imap_plugins++
	next
}

$0 == "  push_notification_driver = deltapush" {
	found_driver++
	next
}

{
	flush_comments()
	emit($0)
}

END {
	flush_comments()
	if (found_mail_plugins != 1 || found_service != 1 ||
	    found_imap_plugins != 1 || found_driver != 1 || in_service) {
		printf "split-conf: expected each once: mail_plugins %d, " \
			"imap mail_plugins %d, push_notification_driver %d, " \
			"service deltapush %d\n", found_mail_plugins,
			found_imap_plugins, found_driver,
			found_service > "/dev/stderr"
		failed = 1
	}
	check_service_seen()
	if (failed)
		exit 1
}
