// The mongo-init job (mongosh --nodb): initiate the replica set once, then make sure every
// service has its own user with readWrite on its own database and nothing else. Safe to run
// at every `docker compose up`: an initiated set is left as it is, an existing user gets the
// password and roles of the environment (a changed password in .env takes effect here).
//
// Environment (compose.yaml sets it): MONGO_REPLICA_SET, MONGO_MEMBERS (host:port,...; the
// first is the seed, which holds the root user), MONGO_ROOT_USERNAME, MONGO_ROOT_PASSWORD,
// and MONGO_SERVICE_PASSWORD_<NAME> for each service: user <name> in database lemma_<name>,
// the database the service's LEMMA_STORE_URL names (lemma_{service}), which is also where it
// logs in (the URL's database is its authSource).
//
// No waiting loop: the replica-set connection below waits for a primary by itself (server
// selection, up to serverSelectionTimeoutMS), as any driver does.

const env = process.env;
const need = (name) => {
  const value = env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const replicaSet = need("MONGO_REPLICA_SET");
const members = need("MONGO_MEMBERS").split(",");
const login = `${encodeURIComponent(need("MONGO_ROOT_USERNAME"))}:${encodeURIComponent(need("MONGO_ROOT_PASSWORD"))}`;

// 1. The replica set: initiated from the seed member, once.
const seed = new Mongo(`mongodb://${login}@${members[0]}/admin?authSource=admin&directConnection=true`);
let status;
try {
  status = seed.getDB("admin").runCommand({ replSetGetStatus: 1 });
} catch (error) {
  // mongosh throws a failed command's answer; older shells returned it
  status = { ok: 0, code: error.code, codeName: error.codeName, errmsg: error.message };
}
if (status.ok === 1) {
  print(`replica set ${status.set} already initiated (${status.members.length} members)`);
} else if (status.codeName === "NotYetInitialized" || status.code === 94) {
  const config = {
    _id: replicaSet,
    // the seed is preferred as primary while it is healthy; any member can take over
    members: members.map((host, i) => ({ _id: i, host, priority: i === 0 ? 2 : 1 })),
  };
  const answer = seed.getDB("admin").runCommand({ replSetInitiate: config });
  if (answer.ok !== 1) throw new Error(`replSetInitiate failed: ${JSON.stringify(answer)}`);
  print(`replica set ${replicaSet} initiated with ${members.join(", ")}`);
} else {
  throw new Error(`replSetGetStatus failed: ${JSON.stringify(status)}`);
}

// 2. One user per service, through the set's primary (the driver finds and waits for it).
const cluster = new Mongo(
  `mongodb://${login}@${members.join(",")}/admin?authSource=admin&replicaSet=${replicaSet}` +
    "&serverSelectionTimeoutMS=120000&w=majority",
);
const prefix = "MONGO_SERVICE_PASSWORD_";
const services = Object.keys(env)
  .filter((name) => name.startsWith(prefix))
  .map((name) => name.slice(prefix.length).toLowerCase())
  .sort();
if (services.length === 0) throw new Error(`no ${prefix}<NAME> variables: no service users to make`);
for (const service of services) {
  const database = `lemma_${service}`;
  const db = cluster.getDB(database);
  const pwd = need(prefix + service.toUpperCase());
  const roles = [{ role: "readWrite", db: database }];
  if (db.getUser(service) === null) {
    db.createUser({ user: service, pwd, roles });
    print(`user ${service} created: readWrite on ${database}`);
  } else {
    db.updateUser(service, { pwd, roles });
    print(`user ${service} updated: readWrite on ${database}`);
  }
}
