# Turn the project's conf.d/2.4/90-deltapush.conf into the package's two
# conffiles:
#
# - stdout, /etc/dovecot/conf.d/90-deltapush.conf: what Dovecot accepts
#   without the package (mail_attribute, imap_metadata, the metrics) and
#   an !include_try of /usr/share/dovecot-deltapush/deltapush-load.conf
#   (debian/2.4/deltapush-load.conf), which loads the plugins, selects the
#   push_notification driver and defines the service;
# - the file named by -v settings=FILE, /etc/dovecot/deltapush.conf: the
#   commented deltapush_* settings, which only deltapush-load.conf
#   includes.
#
# "apt-get remove" deletes deltapush-load.conf and the settings module but
# keeps the conffiles. Dovecot 2.4 refuses to start with a setting no
# module declares, so no deltapush_* line may stay in a file it still
# reads: this script fails when one would, and when the project file no
# longer has exactly the expected lines, so that a change to them is
# carried over to deltapush-load.conf by hand.
#
#   awk -v load=debian/2.4/deltapush-load.conf -v settings=FILE \
#       -f debian/split-service.awk -f debian/2.4/split-conf.awk \
#       conf.d/2.4/90-deltapush.conf

function unexpected(where) {
	printf "split-conf: unexpected line %d in %s: %s\n", NR, where,
		$0 > "/dev/stderr"
	failed = 1
}

# Write one paragraph of the settings part to the settings file.
function flush_settings() {
	if (ncomments > 0)
		printf "\n%s", comments > settings
	drop_comments()
}

BEGIN {
	if (settings == "") {
		print "split-conf: usage: awk -v settings=FILE -f split-conf.awk" \
			> "/dev/stderr"
		failed = 1
		exit 1
	}
	last = "x"
	ncomments = 0
	print "##" > settings
	print "## deltapush settings (Dovecot 2.4)" > settings
	print "##" > settings
	print "## Only /usr/share/dovecot-deltapush/deltapush-load.conf includes" > settings
	print "## this file, so Dovecot reads it only while dovecot-deltapush is" > settings
	print "## installed: Dovecot 2.4 refuses to start with a deltapush_* setting" > settings
	print "## once \"apt-get remove\" has taken the module declaring them. Keep" > settings
	print "## every deltapush_* setting here, none in conf.d or dovecot.conf." > settings
	print "##" > settings
	# The lines moved to deltapush-load.conf, in order.
	nplugins = split("  notify = yes|  push_notification = yes|" \
		"  deltapush = yes|}", plugins, "|")
	nimap = split("    imap_deltapush = yes|  }", imap_plugins, "|")
	read_load_service()
}

# Count the settings wherever they are, to check that all of them end up
# in the settings file.
/^[ \t]*#?[ \t]*deltapush_[a-z_]+[ \t]*=/ {
	input_settings++
}

in_plugins {
	if ($0 != plugins[in_plugins])
		unexpected("mail_plugins")
	in_plugins = in_plugins < nplugins ? in_plugins + 1 : 0
	next
}

in_imap_plugins {
	if ($0 != imap_plugins[in_imap_plugins])
		unexpected("protocol imap's mail_plugins")
	in_imap_plugins = in_imap_plugins < nimap ? in_imap_plugins + 1 : 0
	next
}

in_driver {
	if ($0 == "}") {
		in_driver = 0
		in_settings = 1
		emit("")
		emit("# Debian: the deltapush_* settings are in /etc/dovecot/deltapush.conf,")
		emit("# which only the file included above reads (see README.Debian).")
		next
	}
	if ($0 !~ /^[ \t]*(#.*)?$/)
		unexpected("push_notification deltapush")
	next
}

in_service {
	in_service = service_line($0)
	next
}

# The settings part: the comment paragraphs between the
# push_notification block and the service's comments.
in_settings && $0 == "service deltapush {" {
	# The paragraph just read describes the service.
	drop_comments()
	in_settings = 0
	found_service++
	in_service = 1
	service_depth = 1
	next
}

in_settings {
	if ($0 == "") {
		flush_settings()
	} else if ($0 ~ /^#/) {
		comments = comments $0 "\n"
		ncomments++
		if ($0 ~ /^#deltapush_[a-z_]+ =/)
			moved_settings++
	} else {
		unexpected("the deltapush_* settings")
	}
	next
}

/^#/ {
	comments = comments $0 "\n"
	ncomments++
	next
}

$0 == "protocol imap {" {
	in_imap = 1
}

in_imap && $0 == "  mail_plugins {" {
	found_imap_plugins++
	in_imap_plugins = 1
	next
}

in_imap && $0 == "}" {
	in_imap = 0
}

$0 == "mail_plugins {" {
	drop_comments()
	found_mail_plugins++
	in_plugins = 1
	emit("# Debian: the plugins (mail_plugins), the push_notification driver,")
	emit("# service deltapush and /etc/dovecot/deltapush.conf are in the file")
	emit("# included here. Removing the package deletes it but keeps this file,")
	emit("# so Dovecot still starts afterwards.")
	emit("!include_try /usr/share/dovecot-deltapush/deltapush-load.conf")
	next
}

$0 == "push_notification deltapush {" {
	drop_comments()
	found_driver++
	in_driver = 1
	next
}

$0 == "service deltapush {" {
	# A service block outside the expected place.
	unexpected("the configuration")
	next
}

{
	flush_comments()
	if ($0 ~ /^[ \t]*#?[ \t]*deltapush_[a-z_]+[ \t]*=/)
		unexpected("the conf.d file (a deltapush_* setting)")
	emit($0)
}

END {
	if (failed)
		exit 1
	flush_comments()
	if (found_mail_plugins != 1 || found_imap_plugins != 1 ||
	    found_driver != 1 || found_service != 1 || in_plugins ||
	    in_imap_plugins || in_driver || in_settings || in_service) {
		printf "split-conf: expected each once, in this order: " \
			"mail_plugins %d, protocol imap mail_plugins %d, " \
			"push_notification deltapush %d, the settings, " \
			"service deltapush %d\n", found_mail_plugins,
			found_imap_plugins, found_driver,
			found_service > "/dev/stderr"
		failed = 1
	}
	if (moved_settings == 0 || moved_settings != input_settings) {
		printf "split-conf: %d of %d deltapush_* settings are in the " \
			"settings part\n", moved_settings,
			input_settings > "/dev/stderr"
		failed = 1
	}
	check_service_seen()
	if (failed)
		exit 1
}
