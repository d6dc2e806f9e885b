# Log in with Ruby net-ssh once per job; used by sshca's interop test.
#
# Reads a JSON list of jobs on stdin and writes a JSON list of results on
# stdout, so that one interpreter does every login. A job is
# {"id", "host", "port", "user", "key", "key_type", "cert", "known_hosts",
# "command", "timeout"}, where cert must be key + "-cert.pub" (net-ssh
# finds it there, as OpenSSH does); a result is {"id", "ok", "stdout",
# "error"}.
# A refused login is a result, never an exit status. With --version it
# prints the versions of net-ssh and of the gems it uses for ed25519.
require "json"
require "logger"
require "net/ssh"

if ARGV == ["--version"]
  gems = %w[ed25519 bcrypt_pbkdf].map do |g|
    begin
      require g
      spec = Gem.loaded_specs[g]
      "#{g} #{spec ? spec.version : "loaded"}"
    rescue LoadError
      "#{g} missing"
    end
  end
  puts "net-ssh #{Net::SSH::Version::STRING} (Ruby #{RUBY_VERSION}, #{gems.join(", ")})"
  exit 0
end

def login(job)
  out = +""
  status = nil
  Net::SSH.start(
    job["host"], job["user"],
    port: job["port"],
    keys: [job["key"]], # the certificate is job["key"] + "-cert.pub"
    keys_only: true,
    use_agent: false,
    auth_methods: ["publickey"],
    verify_host_key: :always,
    user_known_hosts_file: [job["known_hosts"]],
    global_known_hosts_file: [],
    non_interactive: true,
    timeout: job["timeout"],
    config: false,
    logger: Logger.new(IO::NULL)
  ) do |ssh|
    ch = ssh.open_channel do |c|
      c.exec(job["command"]) do |_, success|
        raise "exec refused" unless success
        c.on_data { |_, data| out << data }
        c.on_request("exit-status") { |_, buf| status = buf.read_long }
      end
    end
    ch.wait
  end
  return [false, out, "remote command exited #{status.inspect}"] unless status == 0
  [true, out, ""]
end

results = JSON.parse($stdin.read).map do |job|
  begin
    ok, out, err = login(job)
  rescue StandardError, ScriptError => e # every failure is a result
    ok, out, err = false, "", "#{e.class}: #{e.message}"
  end
  { "id" => job["id"], "ok" => ok, "stdout" => out, "error" => err }
end
$stdout.write(JSON.generate(results))
