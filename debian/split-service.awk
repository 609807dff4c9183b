# Shared by debian/2.*/split-conf.awk (awk -v load=FILE -f this -f that):
# the output helpers both use, and the check that the "service deltapush"
# block the split drops from the conf.d file has the same lines as the one
# in deltapush-load.conf, FILE, but for the listener's mode, user and
# group, which are Debian's own choice.

# The comment lines read since the last printed line are held in
# comments (ncomments of them) until it is known where they belong.
function flush_comments() {
	if (ncomments > 0)
		printf "%s", comments
	drop_comments()
}

function drop_comments() {
	comments = ""
	ncomments = 0
}

function emit(line) {
	# Removed lines leave blank lines behind: never print two in a row,
	# nor one right after an opening brace.
	if (line == "" && (last == "" || last ~ /\{$/))
		return
	print line
	last = line
}

# The key of one line of the service block at depth 1 (the service) or 2
# (its listener); "" for lines not compared.
function service_key(line, depth) {
	sub(/^[ \t]+/, "", line)
	sub(/[ \t]+$/, "", line)
	if (line == "" || line ~ /^#/)
		return ""
	if (depth > 1 && line ~ /^(mode|user|group) =/)
		return ""
	return depth ":" line
}

# Reads the load file's service block into load_service[].
function read_load_service(    line, depth, key, n) {
	while ((getline line < load) > 0) {
		if (depth == 0) {
			if (line == "service deltapush {")
				depth = 1
			continue
		}
		key = service_key(line, depth)
		if (key != "") {
			load_service[key] = 1
			n++
		}
		if (line ~ /\{[ \t]*$/)
			depth++
		else if (line ~ /^[ \t]*\}[ \t]*$/ && --depth == 0)
			break
	}
	close(load)
	if (n == 0) {
		printf "split-conf: no service deltapush in %s\n",
			load > "/dev/stderr"
		failed = 1
	}
}

# One line of the conf.d file's service block, after its first line;
# returns 0 at the line that closes it.
function service_line(line,    key) {
	key = service_key(line, service_depth)
	if (key != "") {
		if (!(key in load_service)) {
			printf "split-conf: line %d of service deltapush is " \
				"not in %s: %s\n", NR, load, line > "/dev/stderr"
			failed = 1
		}
		seen_service[key] = 1
	}
	if (line ~ /\{[ \t]*$/)
		service_depth++
	else if (line ~ /^[ \t]*\}[ \t]*$/ && --service_depth == 0)
		return 0
	return 1
}

function check_service_seen(    key) {
	for (key in load_service) {
		if (!(key in seen_service)) {
			printf "split-conf: service deltapush in %s has a line " \
				"the conf.d file does not: %s\n", load,
				substr(key, 3) > "/dev/stderr"
			failed = 1
		}
	}
}
